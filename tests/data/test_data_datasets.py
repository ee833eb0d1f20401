"""FlexIPDataset samples, skipping of bad data, determinism, the modality sampler and collation."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from flexip.data import (
    NO_AUGMENT,
    FlexIPDataset,
    ModalityMixSampler,
    ReferenceAugment,
    collate_samples,
    load_manifest,
    resize_and_crop,
)
from flexip.errors import FlexIPInputError

SPANS = [{"start": 0, "end": 5, "caption": "early"}, {"start": 6, "end": 11, "caption": "late"}]


@pytest.fixture
def good_manifest(tmp_path, make_image, make_video, write_jsonl):
    make_image(tmp_path / "imgs/a.png", caption="sidecar caption")
    make_image(tmp_path / "imgs/b.png")
    make_video(tmp_path / "clips/spans.mp4", frames=12)
    make_video(tmp_path / "clips/one.mp4", frames=16)
    for view in range(3):
        make_image(tmp_path / f"views/s1/{view:02d}.png", color=(20, 80 * view, 200))
    entries = [
        {"modality": "image", "image": "imgs/a.png", "subject": "a"},
        {"modality": "image", "image": "imgs/b.png", "caption": "a blob in the snow"},
        {"modality": "video", "video": "clips/spans.mp4", "captions": SPANS},
        {"modality": "video", "video": "clips/one.mp4", "caption": "a bot on the beach"},
        {"modality": "video", "views": [f"views/s1/{v:02d}.png" for v in range(3)], "captions": ["v0", "v1", "v2"]},
    ]
    return write_jsonl(tmp_path / "manifest.jsonl", entries)


def test_samples_have_the_right_types_and_captions(good_manifest, frame_index):
    dataset = FlexIPDataset(load_manifest(good_manifest), seed=3, min_gap=2, max_gap=4)
    assert len(dataset) == 5 and dataset.modality_counts() == {"image": 2, "video": 3}
    for index in range(len(dataset)):
        sample = dataset[index]
        assert isinstance(sample["reference"], Image.Image) and sample["reference"].mode == "RGB"
        assert isinstance(sample["target"], Image.Image) and sample["target"].mode == "RGB"
        assert sample["index"] == index and sample["skipped"] == {}
    image = dataset[0]
    assert (image["caption"], image["modality"], image["kind"], image["subject"]) == ("sidecar caption", "image", "image", "a")
    assert image["frames"] is None and image["source"] == "manifest.jsonl:1"
    assert image["reference"].size == image["target"].size == (32, 32)
    assert dataset[1]["caption"] == "a blob in the snow"
    assert dataset[3]["caption"] == "a bot on the beach" and dataset[3]["kind"] == "video"
    # per-span captions follow the target frame; decoded frames are the ones reported
    seen = set()
    for epoch in range(30):
        sample = dataset[(2, epoch)]
        reference, target = sample["frames"]
        seen.add(target)
        assert 2 <= abs(target - reference) <= 4
        assert sample["caption"] == ("early" if target <= 5 else "late")
        assert (frame_index(sample["reference"]), frame_index(sample["target"])) == (reference, target)
    assert min(seen) <= 5 < max(seen)
    for epoch in range(20):
        sample = dataset[(4, epoch)]
        reference, target = sample["frames"]
        assert reference != target and sample["caption"] == f"v{target}" and sample["kind"] == "multiview"
        assert sample["modality"] == "video"


@pytest.mark.parametrize("min_gap, max_gap", [(1, 1), (3, 6), (5, None), (11, 11)])
def test_frame_gaps_stay_within_bounds(good_manifest, min_gap, max_gap):
    dataset = FlexIPDataset(load_manifest(good_manifest), seed=0, min_gap=min_gap, max_gap=max_gap)
    gaps = set()
    for epoch in range(40):
        reference, target = dataset[(3, epoch)]["frames"]  # the 16-frame clip
        assert 0 <= reference < 16 and 0 <= target < 16
        gaps.add(abs(target - reference))
    upper = 15 if max_gap is None else max_gap
    assert min(gaps) >= min_gap and max(gaps) <= upper
    if upper > min_gap:
        assert len(gaps) > 1


def test_same_seed_same_samples_and_epochs_differ(good_manifest):
    records = load_manifest(good_manifest)
    augment = ReferenceAugment(rotation_degrees=10, color_jitter=0.2)

    def signature(sample):
        return sample["frames"], sample["caption"], np.asarray(sample["reference"]).tobytes()

    first = FlexIPDataset(records, seed=7, augment=augment)
    second = FlexIPDataset(records, seed=7, augment=augment)
    keys = [(i, e) for e in range(3) for i in range(len(records))]
    assert [signature(first[k]) for k in keys] == [signature(second[k]) for k in reversed(keys)][::-1]
    second.set_epoch(2)
    assert signature(second[0]) == signature(first[(0, 2)])
    assert len({signature(first[(0, e)])[2] for e in range(6)}) > 1  # augmentation changes per epoch
    other = FlexIPDataset(records, seed=8, augment=augment)
    assert [signature(other[k]) for k in keys] != [signature(first[k]) for k in keys]


def test_mask_puts_the_subject_on_a_plain_background(tmp_path, make_image, write_jsonl):
    image = make_image(tmp_path / "img.png", size=40)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:20] = 255  # a 10 × 20 subject box
    Image.fromarray(mask).save(tmp_path / "mask.png")
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"modality": "image", "image": "img.png", "mask": "mask.png", "caption": "x"}])
    dataset = FlexIPDataset(
        load_manifest(manifest), augment=ReferenceAugment(scale=(1, 1), ratio=(1, 1), flip_p=0, mask_margin=0.2, background=(0, 0, 255))
    )
    sample = dataset[0]
    reference = np.asarray(sample["reference"])
    assert reference.shape == (28, 14, 3)  # the box plus 20% margin on each side
    assert (reference[:4] == (0, 0, 255)).all() and (reference[:, :2] == (0, 0, 255)).all()
    assert (reference[4:24, 2:12] == np.asarray(Image.open(image))[10:30, 10:20]).all()
    assert sample["target"].size == (40, 40)


def test_bad_data_is_skipped_counted_and_logged(tmp_path, make_image, make_video, write_jsonl, caplog):
    make_image(tmp_path / "good.png", caption="good image")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    make_video(tmp_path / "short.mp4", frames=3)
    make_video(tmp_path / "clip.mp4", frames=12)
    make_image(tmp_path / "nocaption.png")
    Image.new("L", (16, 16), 255).save(tmp_path / "wrongsize.png")
    entries = [
        {"modality": "image", "image": "good.png"},
        {"modality": "image", "image": "corrupt.png", "caption": "x"},
        {"modality": "image", "image": "missing.png", "caption": "x"},
        {"modality": "image", "image": "nocaption.png"},
        {"modality": "image", "image": "good.png", "mask": "wrongsize.png"},
        {"modality": "video", "video": "empty.mp4", "caption": "x"},
        {"modality": "video", "video": "short.mp4", "caption": "x"},
        {"modality": "video", "video": "missing.mp4", "caption": "x"},
        {"modality": "video", "video": "clip.mp4", "caption": "good video"},
    ]
    dataset = FlexIPDataset(load_manifest(write_jsonl(tmp_path / "m.jsonl", entries)), min_gap=4, max_gap=8)
    total = Counter()
    with caplog.at_level(logging.WARNING, logger="flexip.data.datasets"):
        for index in range(len(entries)):
            sample = dataset[index]
            total.update(sample["skipped"])
            # a replacement comes from the same modality and is a good record
            expected = ("good image", "image") if index < 5 else ("good video", "video")
            assert (sample["caption"], sample["modality"]) == expected
    assert total["corrupt_image"] >= 1 and total["missing_file"] >= 2 and total["missing_caption"] >= 1
    assert total["bad_mask"] >= 1 and total["corrupt_video"] >= 1 and total["video_too_short"] >= 1
    assert dataset.skip_counts() == total
    assert "corrupt_image" in caplog.text and "video_too_short" in caplog.text and "m.jsonl:7" in caplog.text
    for index in (1, 6):  # the first request for a bad record always reports its own skip
        assert dataset[index]["skipped"].get({1: "corrupt_image", 6: "video_too_short"}[index], 0) >= 1


def test_a_modality_with_only_bad_data_fails_clearly(tmp_path, make_image, write_jsonl):
    make_image(tmp_path / "good.png", caption="ok")
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"modality": "image", "image": "good.png"},
            {"modality": "video", "video": "missing.mp4", "caption": "x"},
        ],
    )
    dataset = FlexIPDataset(load_manifest(manifest), max_attempts=5)
    assert dataset[0]["caption"] == "ok"
    with pytest.raises(FlexIPInputError, match="5 video records in a row were unusable"):
        dataset[1]


def test_dataset_argument_checks(good_manifest):
    records = load_manifest(good_manifest)
    with pytest.raises(FlexIPInputError, match="min_gap"):
        FlexIPDataset(records, min_gap=0)
    with pytest.raises(FlexIPInputError, match="max_gap"):
        FlexIPDataset(records, min_gap=3, max_gap=2)
    with pytest.raises(FlexIPInputError, match="at least one record"):
        FlexIPDataset([])
    with pytest.raises(IndexError):
        FlexIPDataset(records)[len(records)]


def test_sampler_mixes_modalities_in_ratio_and_resumes(good_manifest):
    records = load_manifest(good_manifest)
    sampler = ModalityMixSampler(records, {"image": 0.25, "video": 0.75}, num_samples=4000, seed=1)
    draws = list(sampler)
    assert len(draws) == len(sampler) == 4000 and all(epoch == 0 for _, epoch in draws)
    share = sum(records[i].modality == "image" for i, _ in draws) / len(draws)
    assert abs(share - 0.25) < 0.03
    assert Counter(i for i, _ in draws).keys() == set(range(5))  # every record is reachable
    assert draws == list(ModalityMixSampler(records, {"image": 1, "video": 3}, num_samples=4000, seed=1))
    sampler.set_epoch(0, start=1234)
    assert list(sampler) == draws[1234:] and len(sampler) == 4000 - 1234
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != [i for i, _ in draws]
    only_video = ModalityMixSampler(records, {"video": 1.0}, num_samples=200)
    assert {records[i].modality for i, _ in only_video} == {"video"}
    uniform = ModalityMixSampler(records, None, num_samples=2000)
    assert abs(sum(records[i].modality == "image" for i, _ in uniform) / 2000 - 0.4) < 0.05


def test_sampler_replicas_split_the_global_stream(good_manifest):
    records = load_manifest(good_manifest)
    single = [ModalityMixSampler(records, {"image": 1, "video": 1}, num_samples=20, seed=4).draw(i) for i in range(20)]
    ranks = [list(ModalityMixSampler(records, {"image": 1, "video": 1}, num_samples=10, seed=4, num_replicas=2, rank=r)) for r in range(2)]
    interleaved = [index for pair in zip(*ranks) for index, _ in pair]
    assert interleaved == single


def test_sampler_argument_checks(good_manifest, tmp_path, make_image, write_jsonl):
    records = load_manifest(good_manifest)
    with pytest.raises(FlexIPInputError, match="unknown modality"):
        ModalityMixSampler(records, {"audio": 1.0})
    with pytest.raises(FlexIPInputError, match="at least one positive"):
        ModalityMixSampler(records, {"image": 0, "video": 0})
    with pytest.raises(FlexIPInputError, match=">= 0"):
        ModalityMixSampler(records, {"image": -1, "video": 1})
    make_image(tmp_path / "only/a.png", caption="x")
    images_only = load_manifest(write_jsonl(tmp_path / "only/m.jsonl", [{"modality": "image", "image": "a.png"}]))
    with pytest.raises(FlexIPInputError, match="no video records"):
        ModalityMixSampler(images_only, {"image": 0.5, "video": 0.5})


def test_dataloader_with_workers_keeps_pil_and_sums_skips(tmp_path, make_image, write_jsonl):
    make_image(tmp_path / "good.png", caption="good")
    entries = [{"modality": "image", "image": "good.png"}] + [{"modality": "image", "image": f"missing{i}.png", "caption": "x"} for i in range(3)]
    dataset = FlexIPDataset(load_manifest(write_jsonl(tmp_path / "m.jsonl", entries)), seed=2)
    sampler = ModalityMixSampler(dataset, {"image": 1.0}, num_samples=16, seed=2)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=collate_samples, num_workers=workers)
        batches[workers] = list(loader)
    for batch in batches[2]:
        assert len(batch["target"]) == 4 and all(isinstance(im, Image.Image) for im in batch["reference"])
        assert batch["caption"] == ["good"] * 4 and batch["modality"] == ["image"] * 4
    totals = {w: sum((b["skipped"] for b in bs), Counter()) for w, bs in batches.items()}
    assert totals[2] == totals[0] and totals[0]["missing_file"] >= 1
    # the worker processes' copies counted the skips, not the main process's
    assert dataset.skip_counts() == totals[0]
    same = [np.asarray(im).tobytes() for b in batches[0] for im in b["reference"]]
    assert same == [np.asarray(im).tobytes() for b in batches[2] for im in b["reference"]]


def test_resize_and_crop():
    image = Image.new("RGB", (60, 30), (10, 20, 30))
    assert resize_and_crop(image, 16).size == (16, 16)
    assert resize_and_crop(image, (20, 24)).size == (20, 24)
    assert resize_and_crop(Image.new("RGB", (8, 8)), 32).size == (32, 32)
    with pytest.raises(FlexIPInputError):
        resize_and_crop(image, 0)


def test_no_augment_reference_equals_target(good_manifest):
    dataset = FlexIPDataset(load_manifest(good_manifest), augment=NO_AUGMENT)
    sample = dataset[1]
    assert np.array_equal(np.asarray(sample["reference"]), np.asarray(sample["target"]))
    augmented = FlexIPDataset(load_manifest(good_manifest), augment=ReferenceAugment(scale=(0.3, 0.5)))
    assert not np.array_equal(np.asarray(augmented[1]["reference"]), np.asarray(sample["target"]))


def test_partial_span_captions_choose_captioned_targets(tmp_path, make_video, write_jsonl):
    make_video(tmp_path / "partial.mp4", frames=12)
    make_video(tmp_path / "tiny.mp4", frames=5)
    make_video(tmp_path / "silent.mp4", frames=12)
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"modality": "video", "video": "partial.mp4", "captions": [{"start": 0, "end": 2, "caption": "start"}]},
            {"modality": "video", "video": "tiny.mp4", "captions": [{"start": 2, "end": 2, "caption": "middle"}]},
            {"modality": "video", "video": "silent.mp4"},
        ],
    )
    dataset = FlexIPDataset(load_manifest(manifest), min_gap=3, max_gap=5, max_attempts=30)
    for epoch in range(15):
        sample = dataset[(0, epoch)]
        assert sample["frames"][1] <= 2 and sample["caption"] == "start"
    tiny, silent = dataset[1], dataset[2]
    assert tiny["skipped"]["video_too_short"] >= 1  # tiny: captioned frame 2 has no partner 3+ frames away
    assert silent["skipped"]["missing_caption"] >= 1
    assert tiny["index"] == silent["index"] == 0  # the only usable video


def test_subject_references_lend_another_image_of_the_same_subject(tmp_path, make_image, write_jsonl):
    colors = {"a0.png": (250, 0, 0), "a1.png": (0, 250, 0), "a2.png": (0, 0, 250), "b0.png": (250, 250, 0), "c0.png": (0, 250, 250)}
    images = {name: make_image(tmp_path / name, color=color) for name, color in colors.items()}
    subjects = {"a0.png": "a", "a1.png": "a", "a2.png": "a", "b0.png": "b", "c0.png": None}
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [{"modality": "image", "image": name, "caption": "x", **({"subject": s} if s else {})} for name, s in subjects.items()],
    )
    records = load_manifest(manifest)
    pixels = {name: np.asarray(Image.open(path)) for name, path in images.items()}

    def reference_is(sample, name):
        return np.array_equal(np.asarray(sample["reference"]), pixels[name])

    always = FlexIPDataset(records, augment=NO_AUGMENT, subject_references=1.0)
    partners = Counter()
    for epoch in range(30):
        sample = always[(0, epoch)]
        assert not reference_is(sample, "a0.png")  # never the target itself
        partners[sample["partner"]] += 1
        assert reference_is(sample, ["a0.png", "a1.png", "a2.png"][sample["partner"]])
    assert set(partners) == {1, 2}  # both other images of subject a, nothing of b or c
    for alone in (3, 4):  # b has one image, c none: they keep their own
        sample = always[alone]
        assert sample["partner"] is None and np.array_equal(np.asarray(sample["reference"]), np.asarray(sample["target"]))

    never = FlexIPDataset(records, augment=NO_AUGMENT)  # default 0: own image, and the same draws as before
    assert all(never[(0, e)]["partner"] is None for e in range(10))
    half = FlexIPDataset(records, augment=NO_AUGMENT, subject_references=0.5)
    shared = sum(half[(i, e)]["partner"] is not None for i in range(3) for e in range(40))
    assert 30 < shared < 90  # about half of 120
    with pytest.raises(FlexIPInputError, match="probability"):
        FlexIPDataset(records, subject_references=1.5)
    (tmp_path / "a1.png").unlink()  # a missing partner skips the sample like a missing image, never crashes
    broken = FlexIPDataset(records, augment=NO_AUGMENT, subject_references=1.0)
    drawn = [broken[(0, e)] for e in range(20)]
    assert sum(s["skipped"].get("missing_file", 0) for s in drawn) > 0


def test_a_mask_clip_isolates_the_reference_frames_subject(tmp_path, make_video, write_jsonl):
    from flexip.data.video import write_video

    make_video(tmp_path / "clip.mp4", frames=12, size=32)
    masks = []
    for frame in range(12):  # a 8 × 12 subject box that moves one pixel right per frame
        mask = np.zeros((32, 32, 3), np.uint8)
        mask[10:22, 4 + frame : 12 + frame] = 255
        masks.append(mask)
    write_video(masks, tmp_path / "clip_mask.mp4", fps=8)
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"modality": "video", "video": "clip.mp4", "mask": "clip_mask.mp4", "caption": "a bot"}])
    records = load_manifest(manifest)
    assert records[0].mask == tmp_path / "clip_mask.mp4"
    dataset = FlexIPDataset(records, min_gap=2, max_gap=4, augment=ReferenceAugment(mask_margin=0.25, background=(0, 0, 255)))
    for epoch in range(4):
        sample = dataset[(0, epoch)]
        reference = np.asarray(sample["reference"]).astype(int)
        assert reference.shape == (18, 12, 3)  # the box plus 25 % on each side, in the reference frame
        assert (np.abs(reference[:3] - (0, 0, 255)) < 30).all()  # the image samples' backdrop around it
        assert sample["target"].size == (32, 32)
    (tmp_path / "clip_mask.mp4").unlink()
    skipped = FlexIPDataset(records, min_gap=2, max_gap=4)
    with pytest.raises(FlexIPInputError, match="unusable"):
        skipped[0]
    assert skipped.skip_counts()["missing_file"] > 0


def test_view_masks_isolate_the_reference_views_subject(tmp_path, make_image, write_jsonl):
    for view in range(3):
        make_image(tmp_path / f"views/{view}.png", size=32, color=(20, 80 * view, 200))
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 8:16] = 255  # an 8 × 16 box
        Image.fromarray(mask).save(tmp_path / f"views/{view}_mask.png")
    entry = {
        "modality": "video",
        "views": [f"views/{v}.png" for v in range(3)],
        "masks": [f"views/{v}_mask.png" for v in range(3)],
        "caption": "x",
    }
    records = load_manifest(write_jsonl(tmp_path / "m.jsonl", [entry]))
    assert len(records[0].masks) == 3
    sample = FlexIPDataset(records, augment=ReferenceAugment(mask_margin=0.0, background=(1, 2, 3)))[0]
    assert np.asarray(sample["reference"]).shape == (16, 8, 3) and np.asarray(sample["target_mask"]).max() == 255
    with pytest.raises(FlexIPInputError, match="one per view"):
        load_manifest(write_jsonl(tmp_path / "bad.jsonl", [{**entry, "masks": entry["masks"][:2]}]))


def test_variant_masks_isolate_only_that_share_of_clip_and_capture_references(tmp_path, make_image, write_jsonl):
    for view in range(3):
        make_image(tmp_path / f"views/{view}.png", size=32, color=(20, 80 * view, 200))
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 8:16] = 255
        Image.fromarray(mask).save(tmp_path / f"views/{view}_mask.png")
    entry = {
        "modality": "video",
        "views": [f"views/{v}.png" for v in range(3)],
        "masks": [f"views/{v}_mask.png" for v in range(3)],
        "caption": "x",
    }
    records = load_manifest(write_jsonl(tmp_path / "m.jsonl", [entry]))

    def isolated_share(dataset, draws=200):
        samples = [dataset[(0, epoch)] for epoch in range(draws)]
        assert all(np.asarray(s["target_mask"]).max() == 255 for s in samples)  # the target mask either way
        return float(np.mean([s["reference"].size == (8, 16) for s in samples]))  # the box alone, or the whole view

    assert isolated_share(FlexIPDataset(records, augment=ReferenceAugment(mask_margin=0.0))) == 1.0  # the default
    assert isolated_share(FlexIPDataset(records, augment=ReferenceAugment(mask_margin=0.0), variant_masks=0.0)) == 0.0
    assert 0.15 < isolated_share(FlexIPDataset(records, augment=ReferenceAugment(mask_margin=0.0), variant_masks=0.3)) < 0.45
    with pytest.raises(FlexIPInputError, match="variant_masks"):
        FlexIPDataset(records, variant_masks=1.5)
