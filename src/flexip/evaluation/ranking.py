"""mRank: the paper's overall score, the mean of a method's ranks over the five metrics.

Rule: on each metric, methods are ranked in descending order of the value (1 = best; every metric is
"higher is better"); methods with equal values share the average of the ranks they span (two methods
tied for 7th and 8th both get 7.5); mRank is the mean of a method's per-metric ranks.

On the paper's Table 1 this reproduces the printed mRank of every row except ELITE and MoMA, which are
tied at 5.437 on Aesthetic as printed. The paper broke that tie with unrounded values (MoMA 7th, ELITE
8th → MoMA 5.8, ELITE 6.2); from the printed numbers our rule gives both 7.5 (MoMA 5.9, ELITE 6.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from flexip.atomic import write_text
from flexip.errors import FlexIPInputError
from flexip.evaluation.metrics import METRICS
from flexip.evaluation.results import find_result_files, is_result_file, load_result


def rank_methods(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-metric ranks and mRank for a table with a `method` column and one column per metric.

    `metrics`: which columns to rank (default: those of `METRICS` present in the table). Returns a frame
    with columns ``method, mRank, <metric>..., rank <metric>...`` in the input's row order.
    """
    if "method" not in table.columns:
        raise FlexIPInputError(f"a ranking table needs a `method` column; got columns {list(table.columns)}")
    if metrics is None:
        metrics = [name for name in METRICS if name in table.columns]
    missing = [name for name in metrics if name not in table.columns]
    if not metrics or missing:
        raise FlexIPInputError(f"a ranking table needs metric columns {', '.join(METRICS)}; missing {', '.join(missing or METRICS)}")
    if len(table) == 0:
        raise FlexIPInputError("nothing to rank: the table has no rows")
    methods = table["method"].astype(str)
    duplicated = sorted(set(methods[methods.duplicated()]))
    if duplicated:
        raise FlexIPInputError(f"method names must be unique; repeated: {', '.join(duplicated)}")
    values = table[list(metrics)].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        bad = [f"{row}/{column}" for column in metrics for row, value in zip(methods, values[column]) if pd.isna(value)]
        raise FlexIPInputError(f"metric values must be numbers; missing or non-numeric: {', '.join(bad)}")
    ranks = values.rank(ascending=False, method="average")
    result = pd.DataFrame({"method": methods.values})
    result["mRank"] = ranks.mean(axis=1).values
    for name in metrics:
        result[name] = values[name].values
    for name in metrics:
        result[f"rank {name}"] = ranks[name].values
    return result


def sort_by_mrank(ranked: pd.DataFrame) -> pd.DataFrame:
    """Best (lowest mRank) first; equal mRanks keep their input order."""
    return ranked.sort_values("mRank", kind="stable").reset_index(drop=True)


def ranked_metrics(ranked: pd.DataFrame) -> list[str]:
    return [column[len("rank ") :] for column in ranked.columns if column.startswith("rank ")]


def format_rank(value: float) -> str:
    """8.8 → '8.8', 7.5 → '7.5', 4.333… → '4.33', 3.0 → '3'."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def to_markdown(ranked: pd.DataFrame, decimals: int = 3) -> str:
    """The ranking as a markdown table: mRank, then each metric as ``value (rank)``."""
    metrics = ranked_metrics(ranked)
    header = ["method", "mRank", *metrics]
    rows = [
        [
            str(row["method"]),
            format_rank(row["mRank"]),
            *(f"{row[name]:.{decimals}f} ({format_rank(row[f'rank {name}'])})" for name in metrics),
        ]
        for _, row in ranked.iterrows()
    ]
    return markdown_table(header, rows)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)) + " |"
    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows)]) + "\n"


def to_csv(ranked: pd.DataFrame, path: str | Path) -> None:
    write_text(path, ranked.to_csv(index=False))


def load_rank_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Rows to rank from result files, folders of result files, and CSV files.

    A CSV needs a `method` column and the metric columns (`method,CLIP-T,CLIP-I,DINO-I,CLIP-IQA,Aesthetic`);
    other columns (e.g. a printed mRank) are ignored. A result file contributes its overall numbers,
    labelled like 'FlexIP (gamma=0.5)'.
    """
    frames = []
    files = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix.lower() == ".csv":
            frames.append(_read_csv(path))
        else:
            files.extend(find_result_files([path]))
    rows = []
    for path in files:
        if not is_result_file(path):
            raise FlexIPInputError(f"{path} is neither a CSV table nor a FlexIP result file")
        result = load_result(path)
        rows.append({"method": result.label, **result.overall})
    if rows:
        frames.append(pd.DataFrame(rows))
    if not frames:
        raise FlexIPInputError("nothing to rank: no CSV tables or result files found in the given paths")
    table = pd.concat(frames, ignore_index=True)
    present = [name for name in METRICS if name in table.columns and table[name].notna().all()]
    return table[["method", *present]]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise FlexIPInputError(f"cannot read {path} as CSV: {error}") from None
    table.columns = [str(column).strip() for column in table.columns]
    missing = [name for name in ("method", *METRICS) if name not in table.columns]
    if missing:
        raise FlexIPInputError(f"{path} lacks column(s) {', '.join(missing)}; expected method,{','.join(METRICS)}")
    return table
