"""Issue 14's training arms: FlexIP, the IP-Adapter baseline and the ablations, one budget, several seeds.

    flexip miniworld evidence runs/evidence --arms flexip,ip-adapter-image --seeds 52,53

Every arm is the miniworld adapter stage's config (`configs/adapter.yaml`: data, resolution 32, 4000 steps,
batch 16, AdamW at 2e-3 cosine) with the overrides below; only what the arm is about changes. WORKDIR is
prepared from a preset (its base, image encoder and DINO; the world's data re-rendered, hash-checked
against the preset's manifest), so an arm needs no rebuilt stack. Each (arm, seed) trains in
WORKDIR/arms/ARM-sSEED (resumed from its newest checkpoint if one is there) and is then evaluated on the
validation identities (20–39) and the report's (0–19): ARM-sSEED/validation, ARM-sSEED/report.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from PIL import Image

from flexip.errors import FlexIPInputError

#: The modality-aware gate ranges (SPEC §3, build v13's recipe): image samples γ ~ U[0.5, 1], video γ ~ U[0, 0.5].
#: Every FlexIP arm but `uniform-gate` names them, so an arm trains what it trained when it was recorded whatever
#: ranges the shipped config (`configs/adapter.yaml`) has.
MODALITY_AWARE = ("gate.image_range=[0.5, 1.0]", "gate.video_range=[0.0, 0.5]")
#: Both modalities γ ~ U[0, 1]: ablation (a), and the shipped config's ranges since build v14.
UNIFORM = ("gate.image_range=[0.0, 1.0]", "gate.video_range=[0.0, 1.0]")

#: arm → (what it is, the overrides of configs/adapter.yaml).
ARMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "flexip": ("FlexIP, the paper's recipe: modality-aware gate, personalization from zero at lr × 0.1", MODALITY_AWARE),
    "ip-adapter-image": (
        "IP-Adapter Plus (diffusers' classes), one scale, image samples only: how IP-Adapter is trained",
        ("model.method=ip-adapter", "model.ip_adapter={num_tokens: 16, hidden_dims: 64}", "data.mix={image: 1.0, video: 0.0}"),
    ),
    "ip-adapter-full": (
        "IP-Adapter Plus on FlexIP's image + video data (data matched)",
        ("model.method=ip-adapter", "model.ip_adapter={num_tokens: 16, hidden_dims: 64}"),
    ),
    "uniform-gate": ("ablation (a): both modalities γ ~ U[0, 1]", UNIFORM),
    "image-only": ("ablation (b): image samples only", (*MODALITY_AWARE, "data.mix={image: 1.0, video: 0.0}")),
    "no-dino": (
        "ablation (c): no DINO detail tokens: C_pres is the 4 CLIP global tokens alone",
        (*MODALITY_AWARE, "model.adapter.num_queries=0"),
    ),
    "no-personalization": (
        "ablation (d): the personalization branch stays silent (lr × 0)",
        (*MODALITY_AWARE, "optim.personalization_lr_scale=0.0"),
    ),
    # recipe candidates for "both ends keep the subject": the personalization branch must learn identity from the
    # video samples (γ < 0.5) without the text pathway doubling at γ = 0
    "pers-full-rate": ("recipe: personalization from zero at the full learning rate", (*MODALITY_AWARE, "optim.personalization_lr_scale=1.0")),
    "pers-copy": (
        "recipe: the SPEC's personalization (V'_pers a copy of V) at the full rate",
        (*MODALITY_AWARE, "model.personalization_init=copy", "optim.personalization_lr_scale=1.0"),
    ),
    # between lr × 0.1 (γ = 0 at chance) and lr × 1 (γ = 0 at 2.62× chance, CLIP-T no longer falling), on the
    # shipped uniform gate (build v14)
    "uniform-pers-0.3": (
        "recipe: the uniform gate with the personalization branch at lr × 0.3",
        (*UNIFORM, "optim.personalization_lr_scale=0.3"),
    ),
    # uniform-pers-0.3 with one change: the personalization adapter also reads the DINO tokens (c_cls alone names a
    # subject at 0.138, the DINO features at 0.279 among 40: benchmarks/branch_inputs.py)
    "pers-dino": (
        "recipe: uniform-pers-0.3 with the reference's DINO tokens in the personalization adapter's visual context",
        (*UNIFORM, "optim.personalization_lr_scale=0.3", "model.adapter.personalization_dino=true"),
    ),
    # pers-dino kept the subject at γ = 0 but left the dial almost no range (both branches learned the same thing on
    # the same γ); with the paper's modality-aware ranges the personalization branch learns from the video samples
    # (γ < 0.5) and the preservation branch from the image samples, so that the two ends can differ again
    "pers-dino-aware": (
        "recipe: pers-dino on the modality-aware gate ranges",
        (*MODALITY_AWARE, "optim.personalization_lr_scale=0.3", "model.adapter.personalization_dino=true"),
    ),
}
SPLITS = {"validation": 20, "report": 0}  # first held-out identity of each range (20 identities each)


def method_of(arm: str) -> str:
    return "ip-adapter" if arm.startswith("ip-adapter") else "flexip"


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise FlexIPInputError(f"unknown arm(s) {', '.join(unknown) or '(none)'}; arms: {', '.join(ARMS)}")
    return arms


def prepare_workdir(work: Path, preset_dir: Path, log=print) -> None:
    """WORKDIR/data (the world re-rendered; its hash must be the preset's), base, clip/image_encoder, dino/model."""
    from flexip_miniworld.stack.backgrounds import masked_manifest
    from flexip_miniworld.stack.build import BuildSettings, build
    from flexip_miniworld.stack.common import data_hash

    work, preset_dir = Path(work), Path(preset_dir)
    if not (work / "data" / "manifest.jsonl").is_file():
        log("[evidence] rendering the miniworld data")
        build(BuildSettings(workdir=work, stages=("data",)))
    expected = json.loads((preset_dir / "manifest.json").read_text())["stages"]["data"]["data_hash"]
    if data_hash(work / "data") != expected:
        raise FlexIPInputError(f"{work / 'data'} is not the data the preset was trained on (its hash differs from {preset_dir / 'manifest.json'})")
    for source, target in (("base", "base"), ("image_encoder", "clip/image_encoder"), ("dino", "dino/model")):
        if not (work / target).is_dir():
            shutil.copytree(preset_dir / source, work / target)
    masked_manifest(work / "data", work / "cache")


def train_arm(work: Path, arm: str, seed: int, device: str = "cpu", log=print) -> Path:
    """Train (or finish) ARM at SEED; returns its final adapter folder."""
    from flexip.training import Trainer, load_config
    from flexip_miniworld.stack.adapter import CONFIG, overrides

    run = Path(work) / "arms" / f"{arm}-s{seed}"
    if (run / "adapter").is_dir() and (run / "done.json").is_file():
        log(f"[evidence] {run.name}: trained before")
        return run / "adapter"
    settings = overrides(work, 4000, device, (*ARMS[arm][1], f"runtime.seed={seed}"), output_dir=run)
    started = time.perf_counter()
    result = Trainer(load_config(CONFIG, settings), resume="latest").train()
    from flexip.atomic import write_json

    write_json(
        run / "done.json",
        {
            "arm": arm,
            "seed": seed,
            "steps": result.step,
            "seconds_last_sitting": round(time.perf_counter() - started, 1),
            "overrides": list(ARMS[arm][1]),
        },
    )
    log(f"[evidence] {run.name}: trained to step {result.step} in {time.perf_counter() - started:.0f} s")
    return result.adapter_dir


def evaluate_arm(
    work: Path, preset_dir: Path, arm: str, seed: int, adapter_dir: Path | None, device: str = "cpu", log=print, splits=tuple(SPLITS)
) -> dict:
    from flexip_miniworld.evaluate import evaluate

    run = Path(work) / "arms" / f"{arm}-s{seed}"
    results = {}
    for split, first in ((name, SPLITS[name]) for name in splits):
        out = run / split
        if (out / "evaluation.json").is_file():
            results[split] = json.loads((out / "evaluation.json").read_text())
            continue
        log(f"[evidence] {run.name}: evaluating the {split} identities")
        results[split] = evaluate(
            preset_dir,
            Path(work) / "data",
            out,
            subjects=20,
            first=first,
            device=device,
            method=method_of(arm),
            adapter_dir=adapter_dir,
            log=log,
        )
    return results


def collect(work: Path, into: Path, log=print) -> list[str]:
    """Copy every trained run's record into `into` (the repository's docs/results/evidence): per run its
    validation.json and report.json (the evaluations it has), done.json, the loss curve and the trained adapter,
    so the tables and plots can be remade, and the runs (re-)evaluated, without training again (`restore`).
    What a restored run lacks (its checkpoints, hence its loss curve) is kept from the record it came from."""
    from flexip.atomic import atomic_directory, write_json
    from flexip.training.checkpointing import latest_checkpoint, load_trainer_state

    collected = []
    for run in sorted((Path(work) / "arms").glob("*-s*")):
        if not (run / "done.json").is_file():
            continue  # still training: nothing to record
        record = Path(into) / run.name
        with atomic_directory(record) as staging:
            for split in SPLITS:  # a run trained but not yet evaluated keeps its adapter, to be evaluated later
                if (run / split / "evaluation.json").is_file():
                    shutil.copy(run / split / "evaluation.json", staging / f"{split}.json")
                elif (record / f"{split}.json").is_file():
                    shutil.copy(record / f"{split}.json", staging / f"{split}.json")
            shutil.copy(run / "done.json", staging / "done.json")
            checkpoint = latest_checkpoint(run)
            if checkpoint is not None:
                write_json(staging / "loss_curve.json", load_trainer_state(checkpoint).get("loss_curve", []))
            elif (record / "loss_curve.json").is_file():  # a restored run: its checkpoints stayed where it trained
                shutil.copy(record / "loss_curve.json", staging / "loss_curve.json")
            if (run / "adapter").is_dir():
                shutil.copytree(run / "adapter", staging / "adapter")
            elif (record / "adapter").is_dir():  # evaluated from the preset's adapter (`--shipped`): keep what the record has
                shutil.copytree(record / "adapter", staging / "adapter")
        collected.append(run.name)
        log(f"[evidence] collected {run.name}")
    write_runs_table(Path(into))
    return collected


def restore(records: Path, work: Path, log=print) -> list[str]:
    """The reverse of `collect`: every record's adapter/, done.json and evaluations back into
    WORKDIR/arms/ARM-sSEED (nothing a run there already has is overwritten), so that on a fresh checkout the
    collected runs can be (re-)evaluated, and new seeds added, without training the old ones again."""
    restored = []
    for record in sorted(Path(records).glob("*-s*")):
        if not (record / "done.json").is_file():
            continue
        run = Path(work) / "arms" / record.name
        if (run / "done.json").is_file():
            continue
        run.mkdir(parents=True, exist_ok=True)
        if (record / "adapter").is_dir() and not (run / "adapter").exists():
            shutil.copytree(record / "adapter", run / "adapter")
        for split in SPLITS:
            if (record / f"{split}.json").is_file():
                (run / split).mkdir(exist_ok=True)
                shutil.copy(record / f"{split}.json", run / split / "evaluation.json")
        shutil.copy(record / "done.json", run / "done.json")  # last: a run is restored once done.json is there
        restored.append(record.name)
        log(f"[evidence] restored {record.name}")
    return restored


def runs_table(records: Path) -> str:
    """Every collected run's evaluations, one row each (`compare.dial_table`), validation first."""
    from flexip_miniworld.compare import dial_table, load_result

    rows = {}
    for split in SPLITS:
        for record in sorted(records.glob(f"*-s*/{split}.json")):
            rows[f"{record.parent.name} ({split})"] = load_result(record)
    return dial_table(rows)


def write_runs_table(records: Path) -> Path:
    """RECORDS/runs.md: `runs_table` with what its columns mean."""
    from flexip.atomic import write_text

    text = (
        "# Every evidence run, at both ends of its dial\n\n"
        "Written by `flexip_miniworld.evidence.collect` from the records beside this file. Dial 0 → 1 is γ for FlexIP and "
        "its ablations, the scale for IP-Adapter (whose scale 0 is the base model); *id.* is DINO identification among the "
        "20 identities (chance 0.05).\n\n" + runs_table(records) + "\n"
    )
    return write_text(records / "runs.md", text)


def sweep_grid(preset_dir: Path, data_dir: Path, flexip_adapter: Path | None, ip_adapter: Path, out: Path, subjects=(0, 3), prompts=(1, 4)) -> Path:
    """The picture beside the tables: for each (report identity, prompt) a row of FlexIP's γ sweep and a row of
    IP-Adapter's scale sweep at the 5 quarter values, from the noise the evaluation gives that identity."""
    from flexip.atomic import atomic_path
    from flexip.visualization import make_grid
    from flexip_miniworld.dials import SWEEP_5, make_dial
    from flexip_miniworld.evaluate import PROMPT_ORDER, heldout_rows

    dials = {
        "FlexIP gamma": make_dial("flexip", preset_dir, flexip_adapter, "cpu"),
        "IP-Adapter scale": make_dial("ip-adapter", preset_dir, ip_adapter, "cpu"),
    }
    rows, labels = [], []
    for index in subjects:
        row = heldout_rows(Path(data_dir), index, 1)[0]
        references = [Image.open(Path(data_dir) / path).convert("RGB") for path in row["references"]]
        texts = [row["prompts"][PROMPT_ORDER[k]] for k in prompts]
        for name, dial in dials.items():
            swept = dial.sweep(references, texts, list(SWEEP_5), 20, 3.0, index)  # the evaluation's noise: seed 0 + identity index
            for p, text in enumerate(texts):
                rows.append([references[0]] + [swept[v][p] for v in SWEEP_5])
                labels.append(f"{name}: {text}")
    grid = make_grid(rows, ["reference"] + [f"{v:g}" for v in SWEEP_5], labels, cell=96)
    with atomic_path(Path(out)) as temporary:
        grid.save(temporary, format="PNG")
    return Path(out)
