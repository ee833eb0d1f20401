"""The training items of a dataset, as cheap deterministic specifications: `image_item`, `video_item`, `views_item`
(`ImageItem`, `ClipItem`), the manifest row of each (`manifest_row`, `view_paths`) and `render_clip`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexip_miniworld.identity import make_identity
from flexip_miniworld.render import render
from flexip_miniworld.scene import Clip, Pose, SceneText, caption, caption_spans, sample_clip, sample_pose, sample_scene_text, sample_views
from flexip_miniworld.world import WorldConfig, item_rng


@dataclass(frozen=True)
class ImageItem:
    path: str
    subject_index: int
    text: SceneText
    pose: Pose


@dataclass(frozen=True)
class ClipItem:
    kind: str  # "video" or "views"
    path: str  # the .mp4 file, or the folder of views
    subject_index: int
    clip: Clip


def image_item(config: WorldConfig, index: int) -> ImageItem:
    rng = item_rng(config, "image", index)
    subject = int(rng.integers(config.identities))
    text = sample_scene_text(rng)
    return ImageItem(f"images/{index:06d}.png", subject, text, sample_pose(rng))


def video_item(config: WorldConfig, index: int) -> ClipItem:
    rng = item_rng(config, "video", index)
    subject = int(rng.integers(config.identities))
    return ClipItem("video", f"videos/{index:06d}.mp4", subject, sample_clip(rng, config.frames))


def views_item(config: WorldConfig, index: int) -> ClipItem:
    rng = item_rng(config, "views", index)
    subject = int(rng.integers(config.identities))
    return ClipItem("views", f"views/{index:06d}", subject, sample_views(rng, config.views))


def view_paths(item: ClipItem) -> list[str]:
    return [f"{item.path}/{i:02d}.png" for i in range(len(item.clip.poses))]


def manifest_row(config: WorldConfig, item) -> dict:
    identity = make_identity("train", item.subject_index, config.seed)
    if isinstance(item, ImageItem):
        return {"modality": "image", "image": item.path, "caption": caption(identity.noun, item.text), "subject": identity.name}
    spans = caption_spans(identity.noun, item.clip.texts)
    row: dict = {"modality": "video"}
    row["video" if item.kind == "video" else "views"] = item.path if item.kind == "video" else view_paths(item)
    if len(spans) == 1:
        row["caption"] = spans[0]["caption"]
    else:
        row["captions"] = spans
    row["subject"] = identity.name
    return row


def render_clip(config: WorldConfig, split: str, subject_index: int, clip: Clip) -> list[np.ndarray]:
    identity = make_identity(split, subject_index, config.seed)
    return [render(identity, text, pose, config.size, config.supersample) for text, pose in zip(clip.texts, clip.poses)]
