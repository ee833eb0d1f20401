"""The evidence report's comparisons, rebuilt from the collected records in one call, so that every table and
plot of docs/evidence.md comes from the same command however many seeds are in.

    flexip miniworld evidence-tables docs/results/evidence --plots docs/img

Each comparison is a fixed list of arms in a fixed order (the last arm's CLIP-T at dial 1 is the text level of
"DINO-I at the reference CLIP-T"); every seed of an arm that has a record for the identity range joins it, and an
arm with none is left out. The recipe candidates are compared on the validation identities only: rule 2 chooses
there, and the report's identities are looked at after the choice.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from flexip.errors import FlexIPInputError
from flexip_miniworld.compare import BOTH_ENDS, default_ranking, group_by_label, meets, method_statistics
from flexip_miniworld.evaluate import identity_range

#: name → (the arms with their labels, in order; the identity ranges it is made for)
COMPARISONS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "frontier": (
        (("flexip", "FlexIP"), ("ip-adapter-image", "IP-Adapter (image)"), ("ip-adapter-full", "IP-Adapter (full)")),
        ("report", "validation"),
    ),
    "ablations": (
        (
            ("flexip", "FlexIP"),
            ("uniform-gate", "uniform-gate"),
            ("image-only", "image-only"),
            ("no-dino", "no-dino"),
            ("no-personalization", "no-personalization"),
        ),
        ("report", "validation"),
    ),
    "recipes": (  # the shipped recipe first (rule 2's incumbent): build v14's uniform gate, then v13's (`flexip`)
        (
            ("uniform-gate", "uniform-gate"),
            ("flexip", "FlexIP"),
            ("pers-full-rate", "pers-full-rate"),
            ("pers-copy", "pers-copy"),
            ("uniform-pers-0.3", "uniform-pers-0.3"),
            ("pers-dino", "pers-dino"),
            ("pers-dino-aware", "pers-dino-aware"),
        ),
        ("validation",),
    ),
}
SUMMARY_TITLES = {
    "frontier": "FlexIP against IP-Adapter (C1, C2)",
    "ablations": "FlexIP against its ablations (C3)",
    "recipes": "Recipe candidates (rule 2, validation identities only)",
}
SUMMARY_INTRO = (
    "# The evidence in brief\n\nWritten by `flexip miniworld evidence-tables` from the records beside this file: per "
    "comparison and identity range, mean ± sample sd over seeds (a bare value: one seed). The frontier area is taken "
    "against each comparison's own reference point; DINO-I at the reference text is read at the CLIP-T that the "
    "comparison's last method reaches at dial 1; mRank is at each method's default setting (γ = 0.5, scale 1)."
)
#: the markdown file of a comparison on an identity range (the frontier comparison keeps its first names)
TABLE_NAMES = {"frontier": "{split}.md", "ablations": "ablations_{split}.md", "recipes": "recipes_{split}.md"}


def _short(value: tuple, digits: int, seeds: int, signed: bool = False) -> str:
    """Mean ± sd, the bare mean for one seed; a statistic that only some seeds have says over how many."""
    mean, sd, n = value[:3]
    if math.isnan(mean):
        return "not reached"
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    text = text if n < 2 else f"{text} ± {sd:.{digits}f}"
    return text if n == seeds else f"{text} ({n} of {seeds} seeds)"


#: the columns of `summary_rows`, after the optional ratio
SUMMARY_HEADER = "| method | n | identities | frontier area (DINO-I) | DINO-I at the reference text | largest step DINO-I / CLIP-T | DINO-I control range | mRank |"


def summary_rows(groups: dict[str, list[dict]], ratio_to_first: bool = False) -> list[str]:
    """The report's compact rows for one comparison: per method (mean ± sd over seeds, the bare value for one seed)
    the frontier area, DINO-I at the last method's dial-1 text, the largest DINO-I / CLIP-T step shares, the
    DINO-I control range and mRank at the default settings. With `ratio_to_first`, a column after the control
    range gives the first method's mean control range over each other's (C3's ratio)."""
    stats = method_statistics(groups)
    stats.pop("_reference")
    ranking = default_ranking(stats)
    mrank = dict(zip(ranking["method"], ranking["mRank"]))
    best = min(mrank.values())
    first = next(iter(stats.values()))["DINO-I control_range"][0]
    rows = []
    for index, (label, values) in enumerate(stats.items()):
        seeds = len(groups[label])
        steps = f"{_short(values['DINO-I largest_step_share'], 3, seeds)} / {_short(values['CLIP-T largest_step_share'], 3, seeds)}"
        cells = [
            label,
            str(seeds),
            identity_range(groups[label][0]),
            _short(values["area DINO-I"], 4, seeds),
            _short(values["DINO-I at the reference CLIP-T"], 3, seeds),
            steps,
            _short(values["DINO-I control_range"], 3, seeds, signed=True),
        ]
        if ratio_to_first:
            control = values["DINO-I control_range"][0]
            cells.append("" if index == 0 else f"{first / control:.2f}×")
        cells.append(f"**{mrank[label]:.2f}**" if mrank[label] == best else f"{mrank[label]:.2f}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


#: rule 2's first criterion: the four "both ends" targets (identity at dial 1 is its third criterion, by value)
RULE2_TARGETS = BOTH_ENDS[:4]
RULE2_MIN_SEEDS = 2


def rule2_table(groups: dict[str, list[dict]]) -> str:
    """Rule 2 of docs/evidence.md (written before the runs) applied to the recipe candidates' validation records,
    the first group being the shipped recipe: on seed means, (1) more of the four both-ends targets (a ratio's seed
    mean against its bar; a flag must hold on every seed), then (2) the larger frontier area, then (3) the higher
    DINO identification at dial 1; a candidate needs at least two seeds. Markdown: one row per candidate, the order
    it is in by the rule, and the choice."""
    areas = method_statistics(groups)
    order = []
    lines = ["| method | n | both-ends targets met (of 4) | frontier area (DINO-I) | DINO id. at dial 1 | eligible |", "|---|---|---|---|---|---|"]
    for label, runs in groups.items():
        ends = [r["dial_statistics"]["both ends"] for r in runs]
        met = sum(all(e[key] for e in ends) if bar is None else meets(sum(e[key] for e in ends) / len(ends), bar) for key, _, bar in RULE2_TARGETS)
        identified = sum(r["dial_statistics"]["DINO-I identification"]["curve"][-1] for r in runs) / len(runs)
        eligible = len(runs) >= RULE2_MIN_SEEDS
        order += [(met, areas[label]["area DINO-I"][0], identified, label)] if eligible else []
        lines.append(
            f"| {label} | {len(runs)} | {met} | {areas[label]['area DINO-I'][0]:.4f} | {identified:.3f} | {'yes' if eligible else 'no (one seed)'} |"
        )
    shipped = next(iter(groups))
    ranked = [label for *_, label in sorted(order, key=lambda key: key[:3], reverse=True)]
    if not ranked:
        verdict = "No candidate has two seeds yet."
    elif ranked[0] == shipped:
        verdict = f"By rule 2 the shipped recipe ({shipped}) stays: order {' > '.join(ranked)}."
    else:
        verdict = f"By rule 2 **{ranked[0]}** replaces the shipped recipe ({shipped}): order {' > '.join(ranked)}."
    return "\n".join([*lines, "", verdict])


def records_of(records: Path, arm: str, split: str) -> list[Path]:
    """ARM-sSEED/SPLIT.json for every seed of `arm`, in seed order."""
    found = [path for path in records.glob(f"{arm}-s*/{split}.json") if path.parent.name[len(arm) + 2 :].isdigit()]
    return sorted(found, key=lambda path: int(path.parent.name[len(arm) + 2 :]))


def fill_blocks(text: str, blocks: dict[str, str]) -> str:
    """`text` with what stands between each `<!-- begin:evidence-NAME -->` and `<!-- end:evidence-NAME -->` replaced by
    blocks[NAME]; a block the text has no markers for is left out, and text outside the markers is kept as it is."""
    for name, body in blocks.items():
        begin, end = f"<!-- begin:evidence-{name} -->", f"<!-- end:evidence-{name} -->"
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _, body=body, begin=begin, end=end: f"{begin}\n{body.rstrip()}\n{end}", text)
    return text


def write_comparisons(records: Path, plots: Path | None = None, report: Path | None = None, log=print) -> list[Path]:
    """Every comparison on every identity range it is made for, as RECORDS/<table> (markdown) and, with `plots`,
    PLOTS/evidence_<name>_<split>.png; RECORDS/summary.md with the compact rows of all; with `report`, the
    report's marked blocks (`fill_blocks`: one per comparison, and `runs`) rewritten. Returns the files written."""
    from flexip.atomic import write_text
    from flexip_miniworld.compare import compare_results, load_result

    records = Path(records)
    if not records.is_dir():
        raise FlexIPInputError(f"{records} is not a folder of evidence records (written by `flexip miniworld evidence --collect`)")
    from flexip_miniworld.evidence import runs_table

    written, summary, blocks = [], [], {"runs": runs_table(records)}
    for name, (arms, splits) in COMPARISONS.items():
        rows = []
        for split in splits:
            named = [(label, load_result(path)) for arm, label in arms for path in records_of(records, arm, split)]
            if len({label for label, _ in named}) < 2:
                log(f"[evidence] {name} on {split}: fewer than two methods have records, skipped")
                continue
            groups = group_by_label(named)
            rows += summary_rows(groups, ratio_to_first=name == "ablations")
            plot = Path(plots) / f"evidence_{name}_{split}.png" if plots is not None else None
            table = records / TABLE_NAMES[name].format(split=split)
            rule2 = f"\n## Rule 2\n\n{rule2_table(groups)}\n" if name == "recipes" else ""
            written.append(write_text(table, compare_results(named, plot) + "\n" + rule2))
            written += [plot] if plot is not None else []
            counts = ", ".join(f"{label} × {sum(1 for other, _ in named if other == label)}" for label in dict(named))
            log(f"[evidence] {table}: {counts}")
        if rows:
            header = SUMMARY_HEADER.replace(" mRank |", " FlexIP / this (control range) | mRank |") if name == "ablations" else SUMMARY_HEADER
            blocks[name] = "\n".join([header, "|---" * header.count(" | ") + "|---|", *rows])
            summary += [f"## {SUMMARY_TITLES[name]}", "", blocks[name], ""]
    if summary:
        written.append(write_text(records / "summary.md", "\n".join([SUMMARY_INTRO, "", *summary])))
    if report is not None:
        written.append(write_text(report, fill_blocks(Path(report).read_text(), blocks)))
    return written
