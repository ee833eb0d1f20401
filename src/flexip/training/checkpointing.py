"""Training checkpoints: atomic folders, `latest`, rotation, and pickle-free state files.

Layout of `OUTPUT_DIR/checkpoints/step-000100/`:

    adapter/                       the adapter in its final format (EMA weights when EMA is on):
                                   FlexIPPipeline.from_pretrained(base, adapter=".../adapter") loads it
    config.yaml                    the full training config
    training_state/
        trainer_state.json         step, data position (epoch, draws), skip counts, versions
        adapter.safetensors        the raw trained weights (only with EMA; else adapter/ holds them)
        optimizer.safetensors/.json    optimizer state (tensors / everything else)
        ema.safetensors/.json      EMA state (with EMA)
        grad_scaler.json           fp16 loss-scaler state (with fp16)

A checkpoint is written into `step-000100.tmp/` and renamed to `step-000100/` only when complete
(`os.replace`, atomic on one filesystem), so a run killed mid-write leaves either the previous
checkpoints or a `.tmp` folder, which `latest_checkpoint` ignores and `remove_partial` deletes.
Rotation first renames an old checkpoint to `step-N.old` (atomic), then deletes it, so a kill mid-delete
never leaves a half-deleted folder listed as a checkpoint. Resuming takes the newest *intact* checkpoint
(`checkpoint_problem`: every JSON parses, every safetensors header and size is whole, the adapter and
trainer state are there) and says which damaged ones it skipped. State files are safetensors + JSON: no
pickle is ever read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from flexip.atomic import replace_directory
from flexip.errors import CheckpointError

CHECKPOINTS = "checkpoints"
STATE_DIR = "training_state"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoints_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / CHECKPOINTS


def is_checkpoint(path: Path) -> bool:
    return (path / STATE_DIR / STATE_FILE).is_file()


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, folder), oldest first. `.tmp` and `.old` folders are not listed."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and is_checkpoint(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1][1] if checkpoints else None


def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint folder `path` cannot be resumed from, or None if it is intact: the trainer state is a
    JSON object with a step; every JSON file parses; every safetensors file has a whole header and covers
    its tensors; a state tree has both halves; an `adapter/` has its config and weights."""
    from safetensors import safe_open

    path = Path(path)
    state_file = path / STATE_DIR / STATE_FILE
    if not state_file.is_file():
        return f"no {STATE_DIR}/{STATE_FILE}"
    for file in sorted(path.rglob("*")):
        if not file.is_file():
            continue
        name = file.relative_to(path).as_posix()
        if file.suffix == ".json":
            try:
                value = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                return f"{name} is damaged ({type(error).__name__}: {error})"
            if file == state_file and not (isinstance(value, dict) and isinstance(value.get("step"), int)):
                return f"{name} holds no step"
            if file.parent.name == STATE_DIR and file != state_file and not file.with_suffix(".safetensors").is_file():
                return f"{name} has no {file.with_suffix('.safetensors').name} beside it"
        elif file.suffix == ".safetensors":
            try:
                with safe_open(str(file), framework="pt") as handle:
                    handle.keys()
            except Exception as error:  # safetensors raises its own error type for every kind of damage
                return f"{name} is damaged ({error})"
    adapter = path / "adapter"
    if adapter.is_dir():
        flexip = [name for name in ("config.json", "flexip_adapter.safetensors") if not (adapter / name).is_file()]
        ip_adapter = [name for name in ("ip_adapter_config.json", "ip-adapter-plus.safetensors") if not (adapter / name).is_file()]
        missing = flexip if len(flexip) <= len(ip_adapter) else ip_adapter  # a FlexIP adapter, or the IP-Adapter baseline
        if missing:
            return f"adapter/ lacks {', '.join(missing)}"
    return None


def latest_intact_checkpoint(output_dir: str | os.PathLike) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(the newest intact checkpoint or None, [(damaged checkpoint, why)] for the newer ones passed over)."""
    skipped = []
    for _, path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


def remove_partial(output_dir: str | os.PathLike) -> list[Path]:
    """Delete leftovers of interrupted writes and rotations (`step-*.tmp`, `step-*.old`); return what was
    removed. An intact `step-N.old` whose `step-N` is missing (a kill while a step was rewritten) is put back."""
    root = checkpoints_root(output_dir)
    removed = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if not (path.is_dir() and path.suffix in (".tmp", ".old") and _NAME.match(path.stem)):
                continue
            final = path.with_name(path.stem)
            if path.suffix == ".old" and not final.exists() and checkpoint_problem(path) is None:
                os.replace(path, final)
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def resolve_resume(output_dir: str | os.PathLike, resume: str, warn: Callable[[str], None] | None = None) -> Path | None:
    """`latest` → the newest intact checkpoint of `output_dir` (None if there is none yet; each damaged newer
    one is passed over, with a message to `warn`); anything else must be an intact checkpoint folder."""
    if resume == "latest":
        remove_partial(output_dir)
        path, skipped = latest_intact_checkpoint(output_dir)
        for damaged, problem in skipped:
            if warn is not None:
                warn(f"skipping damaged checkpoint {damaged.name}: {problem}" + (f"; resuming from {path.name}" if path else ""))
        if path is None and skipped:
            raise CheckpointError(f"every checkpoint in {checkpoints_root(output_dir)} is damaged (newest: {skipped[0][0].name}: {skipped[0][1]})")
        return path
    path = Path(resume)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint not found: {path} (give a checkpoint folder or 'latest')")
    if not is_checkpoint(path):
        raise CheckpointError(f"{path} is not a complete training checkpoint (no {STATE_DIR}/{STATE_FILE})")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path} is damaged: {problem}; resume from another one (or 'latest', which skips damaged ones)")
    return path


def write_checkpoint(output_dir: str | os.PathLike, step: int, write: Callable[[Path], None], keep: int | None = None) -> Path:
    """Call `write(folder)` on a fresh `step-N.tmp/`, then publish it atomically as `step-N/`; then keep
    only the newest `keep` checkpoints."""
    root = checkpoints_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    temporary = final.with_name(final.name + ".tmp")
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    write(temporary)
    _fsync_tree(temporary)
    replace_directory(temporary, final)  # the same step written again: the old one stays until the new one is in place
    _fsync_directory(root)
    rotate_checkpoints(output_dir, keep)
    return final


def rotate_checkpoints(output_dir: str | os.PathLike, keep: int | None) -> list[Path]:
    if keep is None:
        return []
    removed = []
    for _, path in list_checkpoints(output_dir)[:-keep]:
        retired = path.with_name(path.name + ".old")
        if retired.exists():
            shutil.rmtree(retired)
        os.replace(path, retired)  # atomic: from here on it is no longer listed, whatever a kill leaves of it
        shutil.rmtree(retired, ignore_errors=True)
        removed.append(path)
    return removed


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_directory(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


# ---- state trees (optimizer, EMA, scaler states) as safetensors + JSON --------------------------


def save_state_tree(tree: Any, directory: Path, name: str) -> None:
    """Write a nested structure of dicts / lists / tuples / numbers / strings / tensors as
    `name.json` (the structure) + `name.safetensors` (the tensors)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(tree, name, tensors)
    storages: set[int] = set()
    for key, tensor in tensors.items():  # safetensors refuses tensors sharing memory (tied weights): copy repeats
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in storages and tensor.numel():
            tensors[key] = tensor.clone()
        storages.add(pointer)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(structure, indent=1), encoding="utf-8")


def load_state_tree(directory: Path, name: str) -> Any:
    structure_path, tensor_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not structure_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(f"incomplete checkpoint: {directory} lacks {name}.json / {name}.safetensors")
    try:
        tensors = load_file(str(tensor_path))
        return _unflatten(json.loads(structure_path.read_text(encoding="utf-8")), tensors)
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"cannot read {name} state from {directory}: {error}") from None


def _flatten(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _flatten(v, f"{key}.{k}", tensors) for k, v in value.items()}
        return {"__items__": [[k, _flatten(v, f"{key}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"cannot store a {type(value).__name__} at {key} in a checkpoint")


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__items__" in value:
            return {k: _unflatten(v, tensors) for k, v in value["__items__"]}
        if "__tuple__" in value:
            return tuple(_unflatten(v, tensors) for v in value["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


def save_trainer_state(directory: Path, state: dict) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")


def load_trainer_state(checkpoint: Path) -> dict:
    path = checkpoint / STATE_DIR / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
