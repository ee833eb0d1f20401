"""The feature cache: encode every training sample once, train from the stored features.

Building runs the frozen encoders over every record of the manifest (`draws` augmentation draws per
record: draw k is the sample of epoch k) and writes safetensors shards:

    CACHE/index.json               what was cached, with what, and how to find each entry
    CACHE/shard-00000.safetensors  latents, text_embeds, clip_embeds, dino_tokens, record (one row per entry)

Entry `slot * draws + k` is draw k of the `slot`-th usable record. Training from the cache reads draw
`epoch mod draws` of the record the sampler picks, so **a cache freezes the augmentation**: each record
always shows one of its `draws` precomputed references (and, for clips, frame pairs) instead of a fresh
draw every epoch. Records that cannot give a sample (corrupt files, clips too short, missing captions)
are left out and counted while building.

The cache records the models and resolution it was built with; training refuses a cache that does not
match its config (the features would be wrong), and warns when the manifest changed since.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from flexip.atomic import replace_directory
from flexip.errors import FlexIPInputError
from flexip.training.features import FeatureEncoder, Features

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: + subject_masks; 3: + the optional tensors a run has (SDXL's pooled text, CLIP hidden states)
READABLE_VERSIONS = (2, 3)
INDEX = "index.json"
TENSOR_NAMES = ("latents", "text_embeds", "clip_embeds", "dino_tokens", "subject_masks")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class CacheReport:
    path: Path
    records: int  # usable records cached
    entries: int  # records × draws
    skipped: Counter  # why records were left out (sample-level skip reasons)
    seconds: float


@torch.no_grad()
def build_feature_cache(
    encoder: FeatureEncoder,
    dataset,
    out: str | os.PathLike,
    *,
    signature: dict,
    data: dict,
    draws: int = 1,
    dtype: str = "float32",
    shard_size: int = 512,
    batch_size: int = 16,
    progress: bool = True,
) -> CacheReport:
    """Encode every record of `dataset` (a FlexIPDataset) `draws` times into a cache folder at `out`.

    `signature` (models, resolution) must match at training time; `data` (manifest, gaps, augmentation)
    is recorded for information. The folder is written as `out.tmp/` and renamed when complete."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out)
    temporary = out.with_name(out.name + ".tmp")
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir(parents=True)
    writer = _ShardWriter(temporary, shard_size, _DTYPES[dtype])
    skipped: Counter = Counter()
    modalities: list[str] = []
    pending: list[tuple[int, dict]] = []

    def flush():
        batch = {key: [sample[key] for _, sample in pending] for key in ("reference", "target", "caption", "modality", "target_mask")}
        writer.add(encoder(batch), [record for record, _ in pending])
        pending.clear()

    for record in tqdm(range(len(dataset)), desc="cache", disable=not progress, unit="record"):
        samples = [dataset[(record, draw)] for draw in range(draws)]
        if any(sample["index"] != record for sample in samples):  # the record itself was unusable
            for sample in samples:
                skipped.update(sample["skipped"])
            continue
        modalities.append(samples[0]["modality"])
        for sample in samples:
            pending.append((record, sample))
            if len(pending) >= batch_size:
                flush()
    if pending:
        flush()
    writer.close()
    if not modalities:
        shutil.rmtree(temporary)
        raise FlexIPInputError(f"no usable record to cache (skips: {dict(skipped)})")
    index = {
        "version": CACHE_VERSION,
        "records": len(modalities),
        "draws": draws,
        "entries": writer.entries,
        "shard_size": shard_size,
        "shards": writer.names,
        "tensors": writer.tensor_names,
        "dtype": dtype,
        "modalities": "".join(m[0] for m in modalities),  # 'i' / 'v' per usable record
        "signature": signature,
        "data": data,
        "skipped": dict(skipped),
    }
    (temporary / INDEX).write_text(json.dumps(index, indent=1), encoding="utf-8")
    replace_directory(temporary, out)
    return CacheReport(out, len(modalities), writer.entries, skipped, time.perf_counter() - start)


class _ShardWriter:
    def __init__(self, folder: Path, shard_size: int, dtype: torch.dtype):
        self.folder, self.shard_size, self.dtype = folder, shard_size, dtype
        self.rows: dict[str, list[torch.Tensor]] = {}
        self.buffered, self.entries, self.names = 0, 0, []
        self.tensor_names: list[str] | None = None  # fixed by the first batch: every entry has the same tensors

    def add(self, features: Features, records: list[int]) -> None:
        tensors = features.tensors()
        if self.tensor_names is None:
            self.tensor_names = list(tensors)
            self.rows = {name: [] for name in (*self.tensor_names, "record")}
        for row in range(len(features)):
            for name in self.tensor_names:
                self.rows[name].append(tensors[name][row].to(device="cpu", dtype=self.dtype))
            self.rows["record"].append(torch.tensor(records[row], dtype=torch.int64))
            self.buffered += 1
            if self.buffered == self.shard_size:
                self._write()

    def _write(self) -> None:
        name = f"shard-{len(self.names):05d}.safetensors"
        save_file({key: torch.stack(values).contiguous() for key, values in self.rows.items()}, str(self.folder / name))
        self.names.append(name)
        self.entries += self.buffered
        self.rows = {key: [] for key in self.rows}
        self.buffered = 0

    def close(self) -> None:
        if self.buffered:
            self._write()


class _Slot:
    """What `ModalityMixSampler` needs to know of a cached record."""

    __slots__ = ("modality",)

    def __init__(self, modality: str):
        self.modality = modality


class CachedFeatureDataset(Dataset):
    """Map-style dataset over a feature cache; keys are `slot` or `(slot, epoch)` like FlexIPDataset's."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index_path = self.path / INDEX
        if not index_path.is_file():
            raise FlexIPInputError(f"no feature cache at {self.path} (no {INDEX}); build it with `flexip train --config ... --build-cache`")
        self.index = json.loads(index_path.read_text(encoding="utf-8"))
        if self.index.get("version") not in READABLE_VERSIONS:
            raise FlexIPInputError(f"feature cache {self.path} has version {self.index.get('version')}, expected {CACHE_VERSION}; rebuild it")
        names = {"i": "image", "v": "video"}
        self.records = [_Slot(names[code]) for code in self.index["modalities"]]
        self.indices_by_modality = {m: [i for i, r in enumerate(self.records) if r.modality == m] for m in names.values()}
        self.draws, self.shard_size = int(self.index["draws"]), int(self.index["shard_size"])
        self.tensor_names = list(self.index.get("tensors", TENSOR_NAMES))
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.records)

    def check_matches(self, signature: dict, data: dict) -> None:
        """Refuse a cache built with other models or resolution; warn when the data settings changed."""
        built = self.index["signature"]
        wrong = [f"{key}: cache {built.get(key)!r}, config {value!r}" for key, value in signature.items() if built.get(key) != value]
        if wrong:
            raise FlexIPInputError(
                f"the feature cache at {self.path} does not match this config ({'; '.join(wrong)}); "
                f"rebuild it with `flexip train --config ... --build-cache`"
            )
        changed = [key for key, value in data.items() if self.index["data"].get(key) != value]
        if changed:
            logger.warning(
                "the feature cache at %s was built with other data settings (%s); it trains on the data as cached",
                self.path,
                ", ".join(changed),
            )

    def __getitem__(self, key) -> dict:
        slot, epoch = key if isinstance(key, tuple) else (key, 0)
        entry = int(slot) * self.draws + int(epoch) % self.draws
        shard, row = divmod(entry, self.shard_size)
        handle = self._handle(shard)
        sample = {name: handle.get_slice(name)[row : row + 1][0] for name in self.tensor_names}
        sample.update(modality=self.records[slot].modality, skipped={})
        return sample

    def _handle(self, shard: int):
        if shard not in self._handles:
            if len(self._handles) >= 8:
                self._handles.pop(next(iter(self._handles)))
            self._handles[shard] = safe_open(str(self.path / self.index["shards"][shard]), framework="pt")
        return self._handles[shard]

    def __getstate__(self):  # DataLoader workers open their own file handles
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


def collate_features(samples: list[dict]) -> dict:
    """DataLoader collate for cached samples: stacked tensors, the modality list, no skips."""
    names = [name for name in samples[0] if name not in ("modality", "skipped")]
    batch = {name: torch.stack([sample[name] for sample in samples]) for name in names}
    batch["modality"] = [sample["modality"] for sample in samples]
    batch["skipped"] = Counter()
    return batch


def features_from_cached(batch: dict) -> Features:
    return Features(
        batch["latents"],
        batch["text_embeds"],
        batch["clip_embeds"],
        batch["dino_tokens"],
        list(batch["modality"]),
        batch["subject_masks"],
        pooled_text_embeds=batch.get("pooled_text_embeds"),
        clip_tokens=batch.get("clip_tokens"),
    )


def build_cache_for_config(config, progress: bool = True) -> CacheReport:
    """Build the feature cache at `config.cache.path` with the config's models, resolution and data."""
    from flexip.training.components import (
        cache_signature,
        check_resolution,
        clip_hidden_layer,
        data_signature,
        dino_layer,
        load_dataset,
        load_frozen_components,
        native_resolution,
        place_components,
    )

    if config.cache.path is None:
        raise FlexIPInputError("set cache.path (e.g. cache.path=cache/features) to build a feature cache")
    dataset = load_dataset(config)
    components = load_frozen_components(config.model)
    use_cuda = config.runtime.device != "cpu" and torch.cuda.is_available()
    place_components(components, torch.device("cuda" if use_cuda else "cpu"), torch.float32)
    resolution = config.data.resolution or native_resolution(components)
    check_resolution(resolution, components)
    layer = dino_layer(config.model)
    encoder = FeatureEncoder(components, resolution, layer, clip_hidden_layer(config.model))
    report = build_feature_cache(
        encoder,
        dataset,
        config.cache.path,
        signature=cache_signature(config, resolution, layer),
        data=data_signature(config),
        draws=config.cache.draws,
        dtype=config.cache.dtype,
        shard_size=config.cache.shard_size,
        batch_size=config.cache.batch_size,
        progress=progress,
    )
    logger.info(
        "cached %d records × %d draws in %.1f s → %s (left out: %s)",
        report.records,
        config.cache.draws,
        report.seconds,
        report.path,
        ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) or "none",
    )
    return report
