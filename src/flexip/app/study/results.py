"""Vote shares with 95 % Wilson score intervals: pure functions of vote counts.

For one question, `n` votes were cast and method m received `k` of them: its share is k / n and its interval
the Wilson score interval of a binomial proportion (Wilson 1927; Newcombe 1998 compares it with the others):

    centre = (p + z² / 2n) / (1 + z² / n),   half width = z / (1 + z² / n) · sqrt(p (1 − p) / n + z² / 4n²)

with p = k / n and z the normal quantile of the level (1.96 for 95 %). Unlike p ± z·sqrt(p(1 − p)/n) it stays
inside [0, 1] and does not collapse to a point when a method gets no vote or every vote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from flexip.app.study import QUESTION_NAMES
from flexip.errors import FlexIPInputError


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion successes / trials; (0, 1) when there are no trials."""
    if not 0 <= successes <= trials:
        raise FlexIPInputError(f"need 0 ≤ successes ≤ trials, got {successes} of {trials}")
    if not 0.0 < level < 1.0:
        raise FlexIPInputError(f"level must be in (0, 1), got {level}")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p, n = successes / trials, trials
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Share:
    question: str  # "flex" or "id_pres"
    method: str
    votes: int
    total: int  # votes cast on this question
    low: float
    high: float

    @property
    def share(self) -> float:
        return self.votes / self.total if self.total else 0.0


def vote_shares(counts: Mapping[str, Mapping[str, int]], methods: Sequence[str], level: float = 0.95) -> list[Share]:
    """counts[question][method] → one `Share` per question and method (methods without votes included), in the
    order of `QUESTION_NAMES` and `methods`."""
    shares = []
    for question in QUESTION_NAMES:
        per_method = counts.get(question, {})
        total = sum(per_method.values())
        for method in methods:
            votes = per_method.get(method, 0)
            shares.append(Share(question, method, votes, total, *wilson_interval(votes, total, level)))
    return shares


def table_rows(shares: Sequence[Share]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per method, each question's share and interval, as the page and the CLI show them."""
    methods = list(dict.fromkeys(share.method for share in shares))
    by_key = {(share.question, share.method): share for share in shares}
    header = ["method"]
    for question, name in QUESTION_NAMES.items():
        total = next((share.total for share in shares if share.question == question), 0)
        header += [f"{name} share ({total} votes)", f"{name} 95 % interval"]
    rows = []
    for method in methods:
        row = [method]
        for question in QUESTION_NAMES:
            share = by_key.get((question, method))
            if share is None or share.total == 0:
                row += ["–", "–"]
            else:
                row += [f"{100 * share.share:.1f} % ({share.votes})", f"{100 * share.low:.1f} – {100 * share.high:.1f} %"]
        rows.append(row)
    return header, rows


def format_table(shares: Sequence[Share], evaluators: int) -> str:
    """The results as a plain-text table (what `flexip study results` prints)."""
    header, rows = table_rows(shares)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines) + f"\n\n{evaluators} evaluator(s); shares of the votes cast on each question, 95 % Wilson score intervals."
