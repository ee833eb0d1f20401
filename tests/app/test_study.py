"""The study without a server: Wilson intervals against published values, vote shares against a hand computation,
the study file (blind orders, resume, one vote per question, WAL), `flexip study create / results / export`."""

from __future__ import annotations

import csv
import sqlite3

import pytest
from click.testing import CliRunner
from study_data import COLOURS, make_method_folders, method_of

from flexip.app.study.create import create_study
from flexip.app.study.results import format_table, vote_shares, wilson_interval
from flexip.app.study.store import StudyStore
from flexip.cli.main import main
from flexip.errors import FlexIPInputError


@pytest.mark.parametrize(
    "successes, trials, low, high",
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson score)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(5, 5)[1] == 1.0 and wilson_interval(5, 5)[0] > 0.5
    with pytest.raises(FlexIPInputError):
        wilson_interval(3, 2)


def test_vote_shares_by_hand():
    # Flex: A 7, B 3 of 10. p = 0.7, z = 1.959964, z² = 3.841459: centre = (0.7 + 0.192073) / 1.384146 = 0.644493,
    # half = 1.959964 / 1.384146 · sqrt(0.021 + 0.009604) = 0.247715 → [0.3968, 0.8922]; B: 1 − A mirrored → [0.1078, 0.6032].
    shares = vote_shares({"flex": {"A": 7, "B": 3}, "id_pres": {}}, ["A", "B"])
    flex_a, flex_b, pres_a, _ = shares
    assert (flex_a.votes, flex_a.total, flex_a.share) == (7, 10, 0.7)
    assert (flex_a.low, flex_a.high) == pytest.approx((0.3968, 0.8922), abs=5e-5)
    assert (flex_b.low, flex_b.high) == pytest.approx((0.1078, 0.6032), abs=5e-5)
    assert pres_a.total == 0 and (pres_a.low, pres_a.high) == (0.0, 1.0)
    table = format_table(shares, evaluators=3)
    assert "70.0 % (7)" in table and "39.7 – 89.2 %" in table and "3 evaluator(s)" in table


@pytest.fixture()
def study(tmp_path):
    methods, references = make_method_folders(tmp_path / "images")
    return create_study(tmp_path / "study.sqlite", methods, references=references)


def test_create_reads_the_folders_and_stores_everything(study, tmp_path):
    assert list(study.methods().values()) == list(COLOURS)
    assert len(study.task_ids()) == 4  # 2 subjects × 2 prompts
    with sqlite3.connect(study.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        prompts = {row[0] for row in db.execute("SELECT prompt FROM tasks")}
    assert prompts == {"a dog in the snow", "on a wooden table"}
    ballot = study.next_ballot("ann")
    assert len(study.reference_images(ballot.task_id)) == 2  # both reference views
    with pytest.raises(FlexIPInputError, match="exists"):
        create_study(study.path, {"a": tmp_path, "b": tmp_path}, references=tmp_path)


def test_blind_orders_are_random_per_evaluator_and_question_and_stable(study):
    orders = {
        (evaluator, task, question): study.order(evaluator, task, question)
        for evaluator in ("ann", "bob", "cat")
        for task, question in study.sequence("ann")
    }
    assert len(set(orders.values())) > 1  # the methods do not always stand in the same place
    assert study.sequence("ann") != study.sequence("bob")  # nor the questions
    assert all(study.order(*key) == order for key, order in orders.items())  # the same when asked again (resume)
    ballot = study.next_ballot("ann")
    shown = [method_of(image) for image in study.candidate_images(ballot)]
    assert shown == [study.methods()[method] for method in ballot.order]


def test_a_vote_is_committed_once_and_the_evaluator_resumes(study):
    first = study.next_ballot("ann")
    assert study.cast(first, "B") is True
    assert study.cast(first, "A") is False  # the first vote stands
    with sqlite3.connect(study.path) as db:  # another connection sees it: committed
        assert db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 1
    second = study.next_ballot("ann")
    assert (second.task_id, second.question) != (first.task_id, first.question) and second.answered == 1 and second.number == 2
    with pytest.raises(FlexIPInputError, match="choose one of A, B, C"):
        study.cast(second, "Z")
    with pytest.raises(FlexIPInputError, match="evaluator name"):
        study.next_ballot("  ")


def test_study_cli_create_results_export(tmp_path):
    methods, references = make_method_folders(tmp_path / "images")
    runner = CliRunner()
    arguments = ["study", "create", str(tmp_path / "s.sqlite"), "--references", str(references)]
    for name, folder in methods.items():
        arguments += ["--method", f"{name}={folder}"]
    created = runner.invoke(main, arguments)
    assert created.exit_code == 0, created.output
    assert "4 tasks × 2 questions" in created.output
    store = StudyStore(tmp_path / "s.sqlite")
    for _ in range(3):  # ann votes for FlexIP three times
        ballot = store.next_ballot("ann")
        store.cast(ballot, ballot.letters[[store.methods()[m] for m in ballot.order].index("FlexIP")])
    printed = runner.invoke(main, ["study", "results", str(tmp_path / "s.sqlite")])
    assert printed.exit_code == 0 and "FlexIP" in printed.output and "1 evaluator(s)" in printed.output
    exported = runner.invoke(main, ["study", "export", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "csv")])
    assert exported.exit_code == 0, exported.output
    with open(tmp_path / "csv" / "s_votes.csv") as stream:
        votes = list(csv.DictReader(stream))
    assert len(votes) == 3 and {vote["method"] for vote in votes} == {"FlexIP"} and {vote["evaluator"] for vote in votes} == {"ann"}
    with open(tmp_path / "csv" / "s_results.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 6 and sum(int(row["votes"]) for row in rows) == 3
    bad = runner.invoke(
        main, ["study", "create", str(tmp_path / "t.sqlite"), "--method", f"only={methods['FlexIP']}", "--references", str(references)]
    )
    assert bad.exit_code == 2 and "at least two methods" in bad.output
    missing = runner.invoke(main, ["study", "results", str(tmp_path / "nothing.sqlite")])
    assert missing.exit_code == 2 and "study file not found" in missing.output
