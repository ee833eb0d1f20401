"""A study's results and raw votes as CSV files (written atomically)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from flexip.app.study import QUESTION_NAMES
from flexip.app.study.results import Share, vote_shares
from flexip.app.study.store import StudyStore
from flexip.atomic import write_text

RESULT_COLUMNS = ("question", "method", "votes", "total", "share", "low_95", "high_95")
VOTE_COLUMNS = ("evaluator", "subject", "prompt", "source", "question", "method", "letter", "cast_at")


def shares(store: StudyStore) -> list[Share]:
    return vote_shares(store.counts(), list(store.methods().values()))


def results_csv(rows: list[Share]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for share in rows:
        writer.writerow(
            [QUESTION_NAMES[share.question], share.method, share.votes, share.total, f"{share.share:.6f}", f"{share.low:.6f}", f"{share.high:.6f}"]
        )
    return buffer.getvalue()


def votes_csv(store: StudyStore) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=VOTE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for vote in store.votes():
        writer.writerow({**vote, "question": QUESTION_NAMES[vote["question"]]})
    return buffer.getvalue()


def export(store: StudyStore, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write `<out_dir>/<study>_results.csv` (shares and intervals) and `<out_dir>/<study>_votes.csv` (every vote)."""
    out = Path(out_dir)
    stem = store.path.stem
    return (
        write_text(out / f"{stem}_results.csv", results_csv(shares(store))),
        write_text(out / f"{stem}_votes.csv", votes_csv(store)),
    )
