"""Training data: manifests, video reading, reference augmentation, datasets and the modality sampler.

Modules, in the order data flows:
    manifest        the JSONL manifest: typed records (image, clip, multi-view capture), load / write
    build_manifest  a manifest from folders of media and captions
    images, video   images read safely as 8-bit RGB (and saved); clips read and written with PyAV
    augment         reference augmentation (crop, flip, jitter, subject isolation), target preprocessing
    samples         one record + a generator → one sample (reference, target, caption); why records skip
    datasets        the torch Dataset: samples by index, replacement of unusable records, skip counts
    seeding         the derived generators that make every draw reproducible (exact resume)
    sampler         the modality-mixing sampler (image : video ratio)
    collate         the DataLoader collate function that keeps PIL images

Depends on nothing else in the package but the leaf modules `flexip.errors` and `flexip.atomic`. The
format and folder conventions are documented in docs/data.md. Typical use by a trainer:

    records = load_manifest("data/manifest.jsonl")
    dataset = FlexIPDataset(records, seed=0, min_gap=1, max_gap=8)
    sampler = ModalityMixSampler(dataset, {"image": 0.5, "video": 0.5}, seed=0)
    sampler.set_epoch(epoch, start=draws_done)          # exact resume
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, collate_fn=collate_samples)

Names from heavy modules are imported on first use, so `from flexip.data.images import load_image` and
`flexip data build-manifest` do not pull in torch or PyAV.
"""

from __future__ import annotations

import importlib

# Light modules (standard library only) are imported now. `build_manifest` must be: the function and
# its module share the name, and an eager binding keeps `flexip.data.build_manifest` the function.
from flexip.data.build_manifest import BuildReport, build_manifest, scan_folders
from flexip.data.manifest import (
    MODALITIES,
    CaptionSpan,
    ImageRecord,
    MultiViewRecord,
    Record,
    VideoRecord,
    load_manifest,
    parse_record,
    record_to_json,
    write_manifest,
)

_EAGER = [
    "MODALITIES",
    "BuildReport",
    "CaptionSpan",
    "ImageRecord",
    "MultiViewRecord",
    "Record",
    "VideoRecord",
    "build_manifest",
    "load_manifest",
    "parse_record",
    "record_to_json",
    "scan_folders",
    "write_manifest",
]

# Heavy modules (torch, PyAV, numpy, Pillow) are imported on first use.
_LAZY = {
    # datasets.py, samples.py, sampler.py, collate.py, seeding.py: samples, their sampler and collation
    "FlexIPDataset": "flexip.data.datasets",
    "SKIP_REASONS": "flexip.data.samples",
    "SampleBuilder": "flexip.data.samples",
    "UnusableRecord": "flexip.data.samples",
    "ModalityMixSampler": "flexip.data.sampler",
    "collate_samples": "flexip.data.collate",
    "derived_rng": "flexip.data.seeding",
    # augment.py: reference augmentation, target preprocessing
    "NO_AUGMENT": "flexip.data.augment",
    "ReferenceAugment": "flexip.data.augment",
    "augment_reference": "flexip.data.augment",
    "isolate_subject": "flexip.data.augment",
    "random_resized_crop": "flexip.data.augment",
    "resize_and_crop": "flexip.data.augment",
    "subject_box": "flexip.data.augment",
    # video.py: PyAV reading and writing
    "VideoReadError": "flexip.data.video",
    "count_frames": "flexip.data.video",
    "read_frames": "flexip.data.video",
    "write_video": "flexip.data.video",
    # images.py: safe image reading
    "load_image": "flexip.data.images",
}

__all__ = sorted([*_EAGER, *_LAZY])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flexip.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
