"""What issue 14's rules put into the preset: the IP-Adapter baseline (rule 1) and the FlexIP recipe (rule 2).

Each is a trained evidence run (WORKDIR/arms/ARM-sSEED) copied into the preset folder, with the manifest's
file hashes and size redone and a record of the run and the rule that chose it: `ip_adapter_baseline` and
`adapter_recipe`. The adapter a recipe replaces is not lost: it goes into its own run's record
(docs/results/evidence/ARM-sSEED/adapter), beside every other run's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flexip.errors import FlexIPInputError
from flexip_miniworld.evidence import ARMS, evaluate_arm, method_of

#: the preset's adapter before any recipe was shipped by rule 2 (build v13) was the `flexip` arm at seed 51
FIRST_SHIPPED = ("flexip", 51)


def shipped_run(preset_dir: Path) -> tuple[str, int]:
    """(arm, seed) of the evidence run the preset's adapter is."""
    recipe = json.loads((Path(preset_dir) / "manifest.json").read_text()).get("adapter_recipe")
    return (recipe["arm"], int(recipe["seed"])) if recipe else FIRST_SHIPPED


def evaluate_shipped(work: Path, preset_dir: Path, device: str = "cpu", log=print) -> dict:
    """Evaluate the preset's own adapter as the run it was shipped from (`shipped_run`)."""
    from flexip.atomic import write_json

    arm, seed = shipped_run(preset_dir)
    run = Path(work) / "arms" / f"{arm}-s{seed}"
    results = evaluate_arm(work, preset_dir, arm, seed, Path(preset_dir) / "adapter", device, log)
    if not (run / "done.json").is_file():
        write_json(
            run / "done.json", {"arm": arm, "seed": seed, "steps": 4000, "overrides": list(ARMS[arm][1]), "evaluated_from": "the preset's adapter"}
        )
    return results


def _check_fits(preset_dir: Path, folder: str, staging: Path) -> None:
    """Raise, while `staging` (the new `folder` of the preset) is still aside, if swapping it in would take the
    preset past its size limit: `atomic_directory` then drops it and the preset stays as it was."""
    from flexip_miniworld.stack.ship import SIZE_LIMIT_BYTES

    replaced = (preset_dir / folder, staging)  # the staging folder lies beside `folder`, inside the preset
    kept = (p for p in preset_dir.rglob("*") if p.is_file() and p.name != "manifest.json" and not any(r in p.parents for r in replaced))
    size = sum(p.stat().st_size for p in kept) + sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    if size > SIZE_LIMIT_BYTES:
        raise FlexIPInputError(f"with the new {folder}/ the preset would be {size / 2**20:.1f} MiB; the limit is {SIZE_LIMIT_BYTES / 2**20:.0f} MiB")


def _redo_hashes(preset_dir: Path, manifest: dict) -> dict:
    from flexip_miniworld.stack.common import folder_hashes

    files = {name: digest for name, digest in folder_hashes(preset_dir).items() if name != "manifest.json"}
    manifest["files_sha256"], manifest["total_bytes"] = files, sum((preset_dir / name).stat().st_size for name in files)
    return manifest


def _command(done: dict) -> str:
    return f"flexip miniworld evidence WORKDIR --arms {done['arm']} --seeds {done['seed']}"


def ship_baseline(run: Path, preset_dir: Path, rule: str, log=print) -> Path:
    """Put the trained IP-Adapter of `run` (WORKDIR/arms/ARM-sSEED) beside the preset's adapter as `ip_adapter/`,
    naming its image encoder by its place in the preset, and record it (and every file's hash) in the manifest."""
    from flexip.atomic import atomic_directory, write_json
    from flexip.models.ip_adapter_plus import CONFIG_NAME

    run, preset_dir = Path(run), Path(preset_dir)
    done = json.loads((run / "done.json").read_text())
    if method_of(done["arm"]) != "ip-adapter":
        raise FlexIPInputError(f"{run} is a {done['arm']} run, not an IP-Adapter")
    target = preset_dir / "ip_adapter"
    with atomic_directory(target) as staging:
        for file in (run / "adapter").iterdir():
            shutil.copy(file, staging / file.name)
        config = json.loads((staging / CONFIG_NAME).read_text())
        config["image_encoder"] = "miniworld:image_encoder"
        write_json(staging / CONFIG_NAME, config)
        _check_fits(preset_dir, "ip_adapter", staging)
    manifest = _redo_hashes(preset_dir, json.loads((preset_dir / "manifest.json").read_text()))
    manifest["ip_adapter_baseline"] = {**done, "run": run.name, "chosen_by": rule, "command": _command(done)}
    write_json(preset_dir / "manifest.json", manifest)
    log(f"[evidence] shipped {run.name} as {target} ({manifest['total_bytes'] / 2**20:.2f} MiB preset)")
    return target


def retire(preset_dir: Path, run: Path) -> None:
    """RUN (a record or a run folder of the preset's current adapter) gets its own copy of that adapter, and its
    done.json stops pointing at the preset and names the arm's overrides."""
    from flexip.atomic import write_json

    if not (run / "adapter").exists():
        shutil.copytree(Path(preset_dir) / "adapter", run / "adapter")
    done = json.loads((run / "done.json").read_text())
    done.pop("adapter", None)
    write_json(run / "done.json", {**done, "overrides": list(ARMS[done["arm"]][1]), "was_the_presets_adapter": True})


def ship_recipe(run: Path, preset_dir: Path, records: Path, rule: str, log=print) -> Path:
    """Make the FlexIP adapter of `run` (WORKDIR/arms/ARM-sSEED, rule 2's choice) the preset's `adapter/`.

    The adapter it replaces is first copied into its own run's record under `records` (and its run folder
    beside `run`), so that run can still be evaluated and compared. The manifest's adapter stage then
    describes the shipped run (seed, steps, loss, weights' hashes, how to train it again) and
    `adapter_recipe` names the run and the rule."""
    from flexip.atomic import atomic_directory, write_json
    from flexip.paths import portable_path
    from flexip_miniworld.stack.common import folder_hashes
    from flexip_miniworld.stack.ship import name_encoders_inside_the_preset

    run, preset_dir, records = Path(run), Path(preset_dir), Path(records)
    done = json.loads((run / "done.json").read_text())
    if method_of(done["arm"]) != "flexip":
        raise FlexIPInputError(f"{run} is a {done['arm']} run, not a FlexIP adapter")
    if not (run / "adapter" / "config.json").is_file():
        raise FlexIPInputError(f"{run} has no trained adapter (adapter/config.json)")
    old_arm, old_seed = shipped_run(preset_dir)
    old_name = f"{old_arm}-s{old_seed}"
    if old_name == run.name:
        raise FlexIPInputError(f"{run.name} is the preset's adapter already")
    with atomic_directory(preset_dir / "adapter") as staging:
        for file in (run / "adapter").iterdir():
            shutil.copy(file, staging / file.name)
        name_encoders_inside_the_preset(staging)
        _check_fits(preset_dir, "adapter", staging)
        for keep in (records / old_name, run.parent / old_name):  # the old adapter is still in place: keep a copy
            if keep.is_dir():
                retire(preset_dir, keep)
    manifest = json.loads((preset_dir / "manifest.json").read_text())
    curve = json.loads((records / run.name / "loss_curve.json").read_text()) if (records / run.name / "loss_curve.json").is_file() else []
    stage = manifest["stages"]["adapter"]
    stage.update(
        output=portable_path(run / "adapter"),
        command=_command(done),
        seed=done["seed"],
        steps=done["steps"],
        final_loss=round(curve[-1][1], 4) if curve else None,
        seconds_last_sitting=done.get("seconds_last_sitting"),  # a run resumed across sittings timed its last one only
        weights_sha256=folder_hashes(run / "adapter"),
    )
    for stale in ("seconds", "wall_seconds_this_sitting"):
        stage.pop(stale, None)
    manifest["adapter_recipe"] = {**done, "run": run.name, "replaces": old_name, "chosen_by": rule, "command": _command(done)}
    write_json(preset_dir / "manifest.json", _redo_hashes(preset_dir, manifest))
    log(f"[evidence] shipped {run.name} as {preset_dir / 'adapter'}; {old_name}'s adapter kept in {records / old_name}")
    return preset_dir / "adapter"
