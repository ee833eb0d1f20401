"""Measuring a method with one dial on the miniworld's held-out identities with the independent evaluation encoders.

    flexip miniworld evaluate [--preset DIR] [--method flexip|ip-adapter] [--adapter DIR] [--subjects 20] [--first 0]

For each of N held-out identities from `--first` on (never in the training manifest): its 3 references
(plain backdrop), P of its test prompts; generated images at every dial value (`dials.DIAL_VALUES`: the
11-value sweep 0, 0.1, …, 1 and the quarters of the 5-value sweep; γ for FlexIP, the IP-Adapter scale for
IP-Adapter) and by the base model alone, one noise per (subject, prompt) shared by all. Scores with
the preset's eval/clip and eval/dino (trained separately from the encoders the adapter reads):

    CLIP-T = cos(image, its prompt)   CLIP-I / DINO-I = mean cos(image, the subject's references)

(`flexip.evaluation.metrics`). Calibration on the same scale, from pairs.jsonl: real-vs-real (one
identity, two scenes) and real-vs-other (two identities); plus the true render of every test prompt
scored like a generated image ("real render"). Writes evaluation.json, evaluation.md, the curves
against γ (evaluation_curves.png) and a sample grid. Each identity is saved as it finishes (`records`): a killed
evaluation, run again with the same settings, resumes from the last finished identity.
Nothing here is tuned to the results: subjects, prompts, seed, steps and guidance are fixed up front.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from PIL import Image

from flexip.atomic import atomic_path, write_text
from flexip.errors import FlexIPInputError
from flexip.evaluation import metrics as M
from flexip.evaluation.intervals import step_intervals
from flexip.paths import portable_path
from flexip_miniworld.dataset import load_jsonl
from flexip_miniworld.dials import DIAL_NAMES, DIAL_VALUES, SWEEP_5, SWEEP_11, make_dial
from flexip_miniworld.records import IdentityRecords, pack_images, unpack_images
from flexip_miniworld.stack.common import weights_hash

GAMMAS = SWEEP_5  # the 5-value sweep: its steps get intervals, and the targets read it
#: Which of a held-out identity's 12 test prompts are used (heldout_prompt_texts order): four
#: background changes, colour, pattern + background, shape, style + background.
PROMPT_ORDER = (0, 1, 2, 3, 6, 7, 8, 9, 4, 5, 10, 11)


#: The report's numbers come from the first 20 held-out identities; identities 20-39 are the validation
#: range, for choosing between training runs without looking at the report's identities.
VALIDATION_FIRST = 20


def heldout_rows(data_dir: Path, first: int, subjects: int) -> list[dict]:
    """heldout.jsonl rows `first` … `first + subjects - 1`; the held-out files are rendered first if the
    folder has none (a fresh checkout without the training data)."""
    needed = first + subjects
    if not (data_dir / "heldout.jsonl").exists():
        from flexip_miniworld.dataset import WorldConfig, make_dataset

        make_dataset(data_dir, WorldConfig(identities=400, heldout=max(40, needed)), images=0, videos=0, multiview=0, progress=False)
    rows = load_jsonl(data_dir / "heldout.jsonl")
    if needed > len(rows):
        raise FlexIPInputError(
            f"{data_dir / 'heldout.jsonl'} has {len(rows)} held-out identities; this evaluation needs "
            f"{needed} (first + subjects). Use fewer subjects or render more with `flexip miniworld make-data --heldout`."
        )
    return rows[first:needed]


def identity_range(result: dict) -> str:
    """The held-out identities an evaluation result covers, e.g. "20–39"."""
    first = result.get("first_subject", 0)
    return f"{first}–{first + result['subjects'] - 1}"


def calibration(data_dir: Path, clip, dino) -> dict:
    pairs = load_jsonl(data_dir / "pairs.jsonl")
    heldout = load_jsonl(data_dir / "heldout.jsonl")
    caption_of = {target: prompt for row in heldout for target, prompt in zip(row["targets"], row["prompts"])}
    result = {}
    for kind in ("real-vs-real", "real-vs-other"):
        chosen = [p for p in pairs if p["kind"] == kind]
        a = [Image.open(data_dir / p["a"]).convert("RGB") for p in chosen]
        b = [Image.open(data_dir / p["b"]).convert("RGB") for p in chosen]
        clip_a, clip_b = clip.embed_images(a), clip.embed_images(b)
        dino_a, dino_b = dino.embed_images(a), dino.embed_images(b)
        # CLIP-T: image a with its own caption (real-vs-real) / with image b's caption (real-vs-other)
        texts = clip.embed_texts([caption_of[p["a"] if kind == "real-vs-real" else p["b"]] for p in chosen])
        result[kind] = {
            "pairs": len(chosen),
            "CLIP-T": float(M.clip_t(clip_a, texts).mean()),
            "CLIP-I": float(M.paired_cosine(clip_a, clip_b).mean()),
            "DINO-I": float(M.paired_cosine(dino_a, dino_b).mean()),
        }
    result["identification"] = identification(data_dir, heldout, clip, dino)
    return result


def identification_accuracy(images: torch.Tensor, subjects: torch.Tensor, reference_sets: list[torch.Tensor]) -> float:
    """Share of images whose subject scores highest among all subjects, a subject's score being the
    image's mean cosine to that subject's references (the CLIP-I / DINO-I of that pairing). Anything
    every reference shares (here the plain backdrop) raises all scores alike, so only identity counts."""
    scores = torch.stack([M.mean_cosine_to_set(images, references) for references in reference_sets], dim=1)
    return float((scores.argmax(dim=1) == subjects).float().mean())


def identification_set(data_dir: Path, heldout: list[dict]) -> tuple[list[list], list, torch.Tensor]:
    """(every held-out identity's references, the true renders in background-only scenes (targets
    0–5), the index of each render's identity): the images identification is measured on."""
    references = [[Image.open(data_dir / path).convert("RGB") for path in row["references"]] for row in heldout]
    scenes = [Image.open(data_dir / path).convert("RGB") for row in heldout for path in row["targets"][:6]]
    subjects = torch.tensor([index for index, row in enumerate(heldout) for _ in row["targets"][:6]])
    return references, scenes, subjects


def identification(data_dir: Path, heldout: list[dict], clip, dino) -> dict:
    """`identification_accuracy` of `identification_set`'s renders among every held-out identity's
    references; chance = 1 / identities."""
    references, scenes, subjects = identification_set(data_dir, heldout)
    result = {"scenes": len(scenes), "identities": len(heldout), "chance": 1.0 / len(heldout)}
    for name, model in (("CLIP-I", clip), ("DINO-I", dino)):
        result[name] = identification_accuracy(model.embed_images(scenes), subjects, [model.embed_images(r) for r in references])
    return result


@torch.no_grad()
def render_conditions(
    dial, data_dir: Path, row: dict, chosen: list[int], values, steps: int, guidance: float, seed: int, dial_name: str = "gamma"
) -> tuple[list, list[str], dict[str, list]]:
    """One held-out identity (a heldout.jsonl row) on its test prompts `chosen`: its references, the
    prompts, and the images of every condition — "base" (no reference), f"{dial_name}={v}" for each dial
    value, "real render" (the renderer's own image of each prompt) — all from one noise (`seed`)."""
    references = [Image.open(data_dir / path).convert("RGB") for path in row["references"]]
    texts = [row["prompts"][k] for k in chosen]
    by_condition = {"base": dial.base(references, texts, steps, guidance, seed)}
    for value, images in dial.sweep(references, texts, list(values), steps, guidance, seed).items():
        by_condition[f"{dial_name}={value}"] = images
    by_condition["real render"] = [Image.open(data_dir / row["targets"][k]).convert("RGB") for k in chosen]
    return references, texts, by_condition


def score_identity(
    dial, data_dir: Path, row: dict, chosen: list[int], values, steps: int, guidance: float, seed: int, name: str, clip, dino, grid: bool
) -> dict:
    """One held-out identity rendered (`render_conditions`) and scored: per condition its CLIP-T, CLIP-I and
    DINO-I per image and the images' embeddings (for identification), the references' embeddings, and, when
    `grid`, the sample grid's rows (3 prompts × reference, true render, base, the 5-value sweep)."""
    references, texts, by_condition = render_conditions(dial, data_dir, row, chosen, values, steps, guidance, seed, name)
    ref_clip, ref_dino = clip.embed_images(references), dino.embed_images(references)
    text_embeds = clip.embed_texts(texts)
    conditions = {}
    for condition, images in by_condition.items():
        image_clip, image_dino = clip.embed_images(images), dino.embed_images(images)
        conditions[condition] = {
            "CLIP-T": M.clip_t(image_clip, text_embeds).tolist(),
            "CLIP-I": M.clip_i(image_clip, ref_clip).tolist(),
            "DINO-I": M.dino_i(image_dino, ref_dino).tolist(),
            "CLIP-I embeddings": image_clip,
            "DINO-I embeddings": image_dino,
        }
    cells, labels = [], []
    for p in range(min(3, len(texts)) if grid else 0):
        truth, base = by_condition["real render"][p], by_condition["base"][p]
        cells.append(pack_images([references[0], truth, base] + [by_condition[f"{name}={g}"][p] for g in GAMMAS]))
        labels.append(texts[p])
    return {
        "subject": row["subject"],
        "references": {"CLIP-I": ref_clip, "DINO-I": ref_dino},
        "conditions": conditions,
        "grid": cells,
        "grid_labels": labels,
    }


def evaluate(
    preset_dir: Path,
    data_dir: Path,
    out_dir: Path,
    subjects: int = 20,
    prompts: int = 8,
    steps: int = 20,
    guidance: float = 3.0,
    seed: int = 0,
    device: str = "cpu",
    log=print,
    first: int = 0,
    scale: float = 1.0,
    method: str = "flexip",
    adapter_dir: Path | None = None,
    dial_values=DIAL_VALUES,
) -> dict:
    """Held-out identities `first` … `first + subjects - 1` (0-19: the report; VALIDATION_FIRST onwards:
    validation) × `prompts` prompts; identity i's noise is seeded with `seed + i`. `method` and `adapter_dir`
    (default: the preset's FlexIP adapter) pick what is measured (`dials`); `scale` is FlexIP's adapter scale
    during its γ sweep (1, the pipeline's default, for the report; other values map the control surface)."""
    from flexip.evaluation.backbones import load_clip_embedder, load_dino_embedder

    preset_dir, data_dir, out_dir = Path(preset_dir), Path(data_dir), Path(out_dir)
    if first < 0 or subjects < 1:
        raise FlexIPInputError(f"need first >= 0 and subjects >= 1, got first={first}, subjects={subjects}")
    if not 0.0 <= scale <= 4.0:
        raise FlexIPInputError(f"the adapter scale must be in [0, 4], got {scale}")
    dial_values = sorted({float(v) for v in dial_values})
    if not set(SWEEP_5) <= set(dial_values):
        raise FlexIPInputError(f"the dial values must include the 5-value sweep {list(SWEEP_5)}, got {dial_values}")
    rows = heldout_rows(data_dir, first, subjects)
    started = time.perf_counter()
    dial = make_dial(method, preset_dir, adapter_dir, device, scale)
    name = DIAL_NAMES[method]
    clip = load_clip_embedder(str(preset_dir / "eval" / "clip"), device=device)
    dino = load_dino_embedder(str(preset_dir / "eval" / "dino"), device=device)
    conditions = ["base"] + [f"{name}={v}" for v in dial_values]
    scores = {c: {"CLIP-T": [], "CLIP-I": [], "DINO-I": []} for c in conditions + ["real render"]}
    # for identification: every image's embeddings and subject, every subject's reference embeddings
    embedded = {c: {"CLIP-I": [], "DINO-I": [], "subject": []} for c in scores}
    reference_sets = {"CLIP-I": [], "DINO-I": []}
    grid_rows, grid_labels = [], []
    chosen = [PROMPT_ORDER[k] for k in range(prompts)]
    adapter_weights = Path(adapter_dir) if adapter_dir else preset_dir / "adapter"
    records = IdentityRecords(
        out_dir,
        # the preset's weights: the base and the reference encoders make the images, eval/ scores them
        dict(method=method, adapter=weights_hash(adapter_weights), preset=weights_hash(preset_dir), chosen=chosen, values=dial_values)
        | dict(steps=steps, guidance=guidance, seed=seed, first=first, scale=scale),
    )
    for j, row in enumerate(rows):
        record = records.load(j, row["subject"])
        if record is None:
            record = score_identity(dial, data_dir, row, chosen, dial_values, steps, guidance, seed + first + j, name, clip, dino, grid=j < 4)
            records.save(j, record)
        for metric in reference_sets:
            reference_sets[metric].append(record["references"][metric])
        for condition, scored in record["conditions"].items():
            for metric in ("CLIP-T", "CLIP-I", "DINO-I"):
                scores[condition][metric] += scored[metric]
            for metric in ("CLIP-I", "DINO-I"):
                embedded[condition][metric].append(scored[f"{metric} embeddings"])
            embedded[condition]["subject"] += [j] * len(scored["CLIP-T"])
        for cells, text in zip(record["grid"], record["grid_labels"]):
            grid_rows.append(unpack_images(cells))
            grid_labels.append(text)
        log(f"[evaluate] {j + 1}/{len(rows)} subjects, {time.perf_counter() - started:.0f} s")
    table = {c: {m: float(torch.tensor(v).mean()) for m, v in values.items()} for c, values in scores.items()}
    for condition, values in embedded.items():
        for metric in ("CLIP-I", "DINO-I"):
            table[condition][f"{metric} identification"] = identification_accuracy(
                torch.cat(values[metric]), torch.tensor(values["subject"]), reference_sets[metric]
            )
    calib = calibration(data_dir, clip, dino)
    sweep = [f"{name}={g}" for g in GAMMAS]
    subjects_of_cells = torch.tensor(embedded[sweep[0]]["subject"])
    steps_table = {}
    for metric in ("CLIP-T", "CLIP-I", "DINO-I"):
        intervals = step_intervals(torch.tensor([scores[c][metric] for c in sweep]), subjects_of_cells)
        steps_table[metric] = [{"from": a, "to": b, **vars(i)} for a, b, i in zip(GAMMAS, GAMMAS[1:], intervals)]
    result = {
        "preset": portable_path(preset_dir),
        "method": method,
        "dial": name,
        "adapter": portable_path(adapter_dir) if adapter_dir else "preset",
        "subjects": len(rows),
        "first_subject": first,
        "adapter_scale": scale,
        "prompts_per_subject": prompts,
        "images_per_condition": len(rows) * prompts,
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "gammas": list(GAMMAS),
        "dial_values": dial_values,
        "scores": table,
        "calibration": calib,
        "targets": check_targets(table, calib, name),
        "dial_statistics": dial_statistics(table, name, statistics_values(dial_values), len(rows)),
        "gamma_steps": steps_table,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")  # atomic: a killed run leaves the old files whole
    write_text(out_dir / "evaluation.md", markdown(result))
    records.clear()  # evaluation.json holds what they were for
    plot_curves(result, out_dir / "evaluation_curves.png")
    if grid_rows:
        from flexip.visualization import make_grid

        labels = ["reference", "true render", "base (no ref.)"] + [f"{name} = {g}" for g in GAMMAS]
        with atomic_path(out_dir / "evaluation_samples.png") as temporary:
            make_grid(grid_rows, labels, grid_labels, cell=96).save(temporary)
    return result


#: The direction each metric should move as γ grows (the issue's targets).
DIRECTIONS = {"CLIP-T": -1, "CLIP-I": 1, "DINO-I": 1}


def plot_curves(result: dict, path: Path) -> Path:
    """One panel per metric against γ, with the base, true-render and real-vs-real levels as lines.
    Each step is drawn solid when its interval (`gamma_steps`) excludes 0 and dashed when it does not;
    green when it moves the way the target asks, red when against."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.6, 3.0))
    axes = figure.subplots(1, len(DIRECTIONS))
    gammas, name = result["gammas"], result.get("dial", "gamma")
    for axis, (metric, direction) in zip(axes, DIRECTIONS.items()):
        curve = [result["scores"][f"{name}={g}"][metric] for g in gammas]
        steps = result.get("gamma_steps", {}).get(metric)
        for k in range(len(gammas) - 1):
            moved = curve[k + 1] - curve[k]
            resolved = steps is None or steps[k]["low"] > 0 or steps[k]["high"] < 0
            colour = "tab:green" if moved * direction >= 0 else "tab:red"
            axis.plot(gammas[k : k + 2], curve[k : k + 2], color=colour, lw=2, ls="-" if resolved else "--")
        axis.plot(gammas, curve, "o", color="black", ms=3)
        levels = (
            ("base (no reference)", result["scores"]["base"][metric], "0.5", "--"),
            ("true render", result["scores"]["real render"][metric], "tab:blue", "-."),
            ("real-vs-real", result["calibration"]["real-vs-real"][metric], "tab:purple", ":"),
        )
        for label, value, colour, style in levels:
            axis.axhline(value, color=colour, ls=style, lw=1, label=label)
        axis.set_title(f"{metric} (should {'rise' if direction > 0 else 'fall'})", fontsize=9)
        axis.set_xlabel({"gamma": "γ"}.get(name, name), fontsize=8)
        axis.set_xticks(gammas)
        axis.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, loc="best")
    figure.suptitle(
        f"held-out identities {identity_range(result)} × {result['prompts_per_subject']} prompts; "
        "solid step: 95 % interval excludes 0, dashed: it does not",
        fontsize=8,
    )
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110)
    return path


def _monotone(values: list[float], rising: bool) -> bool:
    return all((b >= a) if rising else (b <= a) for a, b in zip(values, values[1:]))


def check_targets(table: dict, calib: dict, dial: str = "gamma") -> dict:
    """The miniworld preset's targets on the 5-value sweep (their names say γ; for IP-Adapter read its scale)."""
    curve = {m: [table[f"{dial}={g}"][m] for g in GAMMAS] for m in ("CLIP-T", "CLIP-I", "DINO-I")}
    base, real = table["base"]["DINO-I"], calib["real-vs-real"]["DINO-I"]
    closed = (curve["DINO-I"][-1] - base) / (real - base) if real != base else float("nan")
    clip_t_ratio = curve["CLIP-T"][0] / table["base"]["CLIP-T"] if table["base"]["CLIP-T"] else float("nan")
    return {
        "DINO-I rises with gamma (monotone)": _monotone(curve["DINO-I"], True),
        "CLIP-I rises with gamma (monotone)": _monotone(curve["CLIP-I"], True),
        "CLIP-T falls with gamma (monotone)": _monotone(curve["CLIP-T"], False),
        "DINO-I gap closed at gamma=1 (target >= 0.5)": closed,
        "CLIP-T at gamma=0 / base (target >= 0.9)": clip_t_ratio,
    }


#: The metrics whose behaviour along the dial `dial_statistics` reports.
DIAL_METRICS = ("CLIP-T", "CLIP-I", "DINO-I", "DINO-I identification")


def statistics_values(dial_values) -> list[float]:
    """The values the dial's statistics run over: the 11-value sweep when every one of them was measured, else
    every measured value (e.g. the 5-value sweep alone, not the three of its values that lie on the 11)."""
    return list(SWEEP_11) if set(SWEEP_11) <= set(dial_values) else sorted(dial_values)


def dial_statistics(table: dict, dial: str, values: list[float], subjects: int) -> dict:
    """Per metric over the 11-value sweep: Spearman ρ with the dial, the largest neighbour step as a share of the
    curve's range, the control range (dial 1 − dial 0), and the curve itself; plus "both ends": what
    the dial's two ends keep (issue 14's targets, as ratios the reader compares with the bars)."""
    from flexip.evaluation.frontier import control_range, largest_step_share, spearman_rho

    out = {"values": list(values)}
    for metric in DIAL_METRICS:
        curve = [table[f"{dial}={v}"][metric] for v in values]
        out[metric] = {
            "curve": curve,
            "rho": spearman_rho(curve, values),
            "largest_step_share": largest_step_share(curve),
            "control_range": control_range(curve),
        }
    five = {m: [table[f"{dial}={v}"][m] for v in GAMMAS] for m in ("CLIP-T", "DINO-I")}
    real = table["real render"]["DINO-I identification"]
    out["both ends"] = {
        "CLIP-T at dial 0 / base": five["CLIP-T"][0] / table["base"]["CLIP-T"],
        "CLIP-T falls at every step of the 5-value sweep": all(b < a for a, b in zip(five["CLIP-T"], five["CLIP-T"][1:])),
        "DINO-I rises at every step of the 5-value sweep": all(b > a for a, b in zip(five["DINO-I"], five["DINO-I"][1:])),
        "DINO id. at dial 0 / chance": table[f"{dial}=0.0"]["DINO-I identification"] * subjects,
        "DINO id. at dial 1 / true renders'": table[f"{dial}=1.0"]["DINO-I identification"] / real if real else float("nan"),
    }
    return out


def markdown(result: dict) -> str:
    scale = result.get("adapter_scale", 1.0)
    scale_note = "" if scale == 1.0 else f"at adapter scale {scale:g} "
    lines = [
        f"Held-out identities {identity_range(result)}"
        f"{' (validation range)' if result.get('first_subject', 0) >= VALIDATION_FIRST else ''}: {result['subjects']} × {result['prompts_per_subject']} prompts "
        + scale_note
        + f"({result['images_per_condition']} images per row); {result['steps']} DDIM steps, guidance {result['guidance']}, "
        "scored with the evaluation encoders (eval/clip, eval/dino). *id.*: share of images whose own subject "
        f"scores highest among the {result['subjects']} subjects' references (chance {1 / result['subjects']:.3f}).",
        "",
        "| condition | CLIP-T | CLIP-I | DINO-I | CLIP-I id. | DINO-I id. |",
        "|---|---|---|---|---|---|",
    ]
    for condition, values in result["scores"].items():
        name = (
            "base, no reference (adapter_scale = 0)"
            if condition == "base"
            else condition.replace("gamma=", "FlexIP γ = ").replace("scale=", "IP-Adapter scale ")
        )
        if condition == "real render":
            name = "true render of the prompt (real image)"
        found = " | ".join(f"{values[k]:.3f}" if k in values else "—" for k in ("CLIP-I identification", "DINO-I identification"))
        lines.append(f"| {name} | {values['CLIP-T']:.4f} | {values['CLIP-I']:.4f} | {values['DINO-I']:.4f} | {found} |")
    for kind, values in result["calibration"].items():
        if kind == "identification":
            continue
        lines.append(
            f"| calibration: {kind} ({values['pairs']} pairs) | {values['CLIP-T']:.4f} | {values['CLIP-I']:.4f} | {values['DINO-I']:.4f} | — | — |"
        )
    found = result["calibration"].get("identification")
    if found:
        lines += [
            "",
            f"Identification (calibration): of {found['scenes']} true renders in background-only scenes, the share whose own "
            f"identity scores highest among all {found['identities']} identities' references: CLIP-I {found['CLIP-I']:.3f}, DINO-I {found['DINO-I']:.3f} "
            f"(chance {found['chance']:.3f}).",
        ]
    if result.get("gamma_steps"):
        lines += [
            "",
            "Each γ step, image by image (same subject, prompt and noise): mean change and 95 % interval from "
            "2000 bootstrap resamples of the subjects (`flexip.evaluation.intervals`); an interval that "
            "holds 0 is a step the measurement cannot tell from no change.",
            "",
            "| step | " + " | ".join(result["gamma_steps"]) + " |",
            "|---|" + "---|" * len(result["gamma_steps"]),
        ]
        for k, step in enumerate(next(iter(result["gamma_steps"].values()))):
            cells = [f"{s[k]['mean']:+.4f} [{s[k]['low']:+.4f}, {s[k]['high']:+.4f}]" for s in result["gamma_steps"].values()]
            lines.append(f"| γ {step['from']} → {step['to']} | " + " | ".join(cells) + " |")
    lines += ["", "| target | measured |", "|---|---|"]
    statistics = result.get("dial_statistics", {})
    for name, value in {**result["targets"], **statistics.get("both ends", {})}.items():
        lines.append(f"| {name} | {value if isinstance(value, bool) else f'{value:.3f}'} |")
    if statistics:
        lines += [
            "",
            f"Along the {len(statistics['values'])}-value sweep of the dial ({result.get('dial', 'gamma')} = "
            f"{statistics['values'][0]:g} … {statistics['values'][-1]:g}): Spearman ρ with the dial, the largest neighbour "
            "step as a share of the metric's range, and the control range (dial 1 − dial 0).",
            "",
            "| metric | ρ | largest step share | control range |",
            "|---|---|---|---|",
        ]
        for metric in DIAL_METRICS:
            values = statistics[metric]
            lines.append(f"| {metric} | {values['rho']:+.3f} | {values['largest_step_share']:.3f} | {values['control_range']:+.4f} |")
    return "\n".join(lines) + "\n"
