"""The study through the real server (`flexip study serve`) and gradio_client: two evaluators vote blind, the page's
shares match a hand computation; a third is cut off by a real SIGKILL of the server mid-study, loses no committed
vote, and resumes where they stopped on a fresh server."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest
from gradio_client import Client
from studio_helpers import start_server, stop_server
from study_data import COLOURS, make_method_folders, method_of

from flexip.app.study.create import create_study


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    methods, references = make_method_folders(root / "images")
    return create_study(root / "study.sqlite", methods, references=references).path


@pytest.fixture(scope="module")
def server(study_file):
    running = start_server(["study", "serve", str(study_file)], cwd=study_file.parent, out=study_file.parent / "outputs", name="study")
    yield running
    stop_server(running)


def start(client, evaluator):
    return client.predict(evaluator, api_name="/study_start")


def vote(client, page, method):
    """Vote for `method` on the question shown on `page` by finding its image (the page shows only letters)."""
    candidates = page[3]  # (progress, question, references, candidates): the client leaves out the state and the buttons
    (letter,) = [item["caption"] for item in candidates if method_of(item["image"]) == method]
    return client.predict(letter, api_name="/study_vote")


def question_of(page) -> str:
    return "flex" if "follows the text" in page[1] else "id_pres"


def test_votes_in_shares_out_by_hand(server, study_file, tmp_path):
    plans = {  # which method each evaluator picks, per question, in the order the questions come
        "ann": {"flex": ["FlexIP"] * 4, "id_pres": ["IP-Adapter"] * 4},
        "bob": {"flex": ["FlexIP", "IP-Adapter", "IP-Adapter", "IP-Adapter"], "id_pres": ["FlexIP", "FlexIP", "ELITE", "ELITE"]},
    }
    for evaluator, plan in plans.items():
        client = Client(server.url, verbose=False, download_files=str(tmp_path / evaluator))
        page = start(client, evaluator)
        for _ in range(8):
            assert not any(
                name in str(page[:2]) + str([item["caption"] for item in page[3]]) for name in COLOURS
            )  # blind: no method name on the page
            page = vote(client, page, plan[question_of(page)].pop(0))
        assert "All 8 questions answered" in page[0]
    # by hand: Flex: FlexIP 5, IP-Adapter 3, ELITE 0 of 8; ID-Pres: IP-Adapter 4, FlexIP 2, ELITE 2 of 8.
    # Wilson 95 %, n = 8, z² = 3.841459, 1 + z²/n = 1.480182, z / (1 + z²/n) = 1.324137, z²/4n² = 0.015006:
    #   5/8: centre (0.625 + 0.240091) / 1.480182 = 0.584450, half 1.324137 · sqrt(0.029297 + 0.015006) = 0.278756 → 30.6 – 86.3 %
    #   3/8: the mirror of 5/8 → 13.7 – 69.4 %;  0/8: centre 0.162203, half 0.162203 → 0.0 – 32.4 %
    #   4/8: centre 0.5, half 1.324137 · sqrt(0.03125 + 0.015006) = 0.284785 → 21.5 – 78.5 %
    #   2/8: centre 0.331103, half 1.324137 · sqrt(0.023438 + 0.015006) = 0.259624 → 7.1 – 59.1 %
    expected = {
        "FlexIP": ["FlexIP", "62.5 % (5)", "30.6 – 86.3 %", "25.0 % (2)", "7.1 – 59.1 %"],
        "IP-Adapter": ["IP-Adapter", "37.5 % (3)", "13.7 – 69.4 %", "50.0 % (4)", "21.5 – 78.5 %"],
        "ELITE": ["ELITE", "0.0 % (0)", "0.0 – 32.4 %", "25.0 % (2)", "7.1 – 59.1 %"],
    }
    table = Client(server.url, verbose=False).predict(api_name="/study_results")
    rows = {row[0]: row for row in table["data"]}
    assert rows == expected


def test_a_sigkill_mid_study_loses_no_committed_vote_and_the_evaluator_resumes(server, study_file, tmp_path):
    client = Client(server.url, verbose=False, download_files=str(tmp_path / "before"))
    page = start(client, "cat")
    for _ in range(3):
        page = vote(client, page, "ELITE")  # each call returns after its vote is committed
    letter = [item["caption"] for item in page[3] if method_of(item["image"]) == "ELITE"][0]
    client.submit(letter, api_name="/study_vote")  # a fourth vote in flight ...
    os.kill(server.process.pid, signal.SIGKILL)  # ... and the server is killed, no chance to clean up
    server.process.wait(timeout=30)
    with sqlite3.connect(study_file) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = db.execute("SELECT COUNT(*) FROM votes WHERE evaluator = 'cat'").fetchone()[0]
    assert committed in (3, 4)  # the three acknowledged votes are there; the one in flight is all or nothing

    again = start_server(["study", "serve", str(study_file)], cwd=study_file.parent, out=study_file.parent / "outputs", name="study-restarted")
    try:
        client = Client(again.url, verbose=False, download_files=str(tmp_path / "after"))
        page = start(client, "cat")
        assert f"Question {committed + 1} of 8 ({committed} answered so far)" in page[0]  # resumes at the first unanswered
        while "All 8 questions answered" not in page[0]:
            page = vote(client, page, "ELITE")
        with sqlite3.connect(study_file) as db:
            methods = {row[0] for row in db.execute("SELECT methods.name FROM votes JOIN methods ON methods.id = method_id WHERE evaluator = 'cat'")}
            assert db.execute("SELECT COUNT(*) FROM votes WHERE evaluator = 'cat'").fetchone()[0] == 8
        assert methods == {"ELITE"}
    finally:
        stop_server(again)
