"""The evidence report's comparisons, rebuilt from the collected records in one call, so that every table and
plot of docs/evidence.md comes from the same command however many seeds are in.

    flexip miniworld evidence-tables docs/results/evidence --plots docs/img

Each comparison is a fixed list of arms in a fixed order (the last arm's CLIP-T at dial 1 is the text level of
"DINO-I at the reference CLIP-T"); every seed of an arm that has a record for the identity range joins it, and an
arm with none is left out. The recipe candidates are compared on the validation identities only: rule 2 chooses
there, and the report's identities are looked at after the choice.
"""

from __future__ import annotations

from pathlib import Path

from flexip.errors import FlexIPInputError

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
    "recipes": (
        (("flexip", "FlexIP"), ("uniform-gate", "uniform-gate"), ("pers-full-rate", "pers-full-rate"), ("pers-copy", "pers-copy")),
        ("validation",),
    ),
}
#: the markdown file of a comparison on an identity range (the frontier comparison keeps its first names)
TABLE_NAMES = {"frontier": "{split}.md", "ablations": "ablations_{split}.md", "recipes": "recipes_{split}.md"}


def records_of(records: Path, arm: str, split: str) -> list[Path]:
    """ARM-sSEED/SPLIT.json for every seed of `arm`, in seed order."""
    found = [path for path in records.glob(f"{arm}-s*/{split}.json") if path.parent.name[len(arm) + 2 :].isdigit()]
    return sorted(found, key=lambda path: int(path.parent.name[len(arm) + 2 :]))


def write_comparisons(records: Path, plots: Path | None = None, log=print) -> list[Path]:
    """Every comparison on every identity range it is made for, as RECORDS/<table> (markdown) and, with `plots`,
    PLOTS/evidence_<name>_<split>.png. Returns the files written."""
    from flexip.atomic import write_text
    from flexip_miniworld.compare import compare_results, load_result

    records = Path(records)
    if not records.is_dir():
        raise FlexIPInputError(f"{records} is not a folder of evidence records (written by `flexip miniworld evidence --collect`)")
    written = []
    for name, (arms, splits) in COMPARISONS.items():
        for split in splits:
            named = [(label, load_result(path)) for arm, label in arms for path in records_of(records, arm, split)]
            if len({label for label, _ in named}) < 2:
                log(f"[evidence] {name} on {split}: fewer than two methods have records, skipped")
                continue
            plot = Path(plots) / f"evidence_{name}_{split}.png" if plots is not None else None
            table = records / TABLE_NAMES[name].format(split=split)
            written.append(write_text(table, compare_results(named, plot) + "\n"))
            written += [plot] if plot is not None else []
            counts = ", ".join(f"{label} × {sum(1 for other, _ in named if other == label)}" for label in dict(named))
            log(f"[evidence] {table}: {counts}")
    return written
