"""The miniworld: a procedural world of subjects and captioned scenes, for training and testing the
miniature FlexIP stack offline. A package of its own beside `flexip`: it uses flexip's public API, flexip
never imports it; its commands join `flexip` through the `flexip.commands` entry point (`cli.py`).

- `identity`: subjects — a class noun plus continuous parameters that text cannot describe;
  training and held-out identities come from disjoint seed ranges.
- `scene`: the text-addressable scene (backgrounds, placement, size, styles, property changes),
  the caption grammar and its parser, and pose/clip sampling.
- `render/`: deterministic numpy + PIL rendering (supersampled, LANCZOS-downsampled); the vocabulary's
  looks are tables (backgrounds, patterns, body plans, styles) read by small drawers.
- `dataset`: writing images, mp4 clips, multi-view captures, the training manifest and held-out files
  (`world`: settings and seeding, `items`: training rows, `heldout`: held-out identities and calibration
  pairs, `files`: PNG / JSONL / mp4 I/O).
- `stack/`: the stage trainers of the miniature stack (`flexip miniworld build`) and `ship` (the preset).
- `evaluate`, `compare`: `flexip miniworld evaluate` / `compare`.

Render with `flexip_miniworld.render.render(identity, scene_text, pose, size)`.
`flexip miniworld make-data` and `flexip miniworld preview` are the command-line front ends.
"""

from flexip_miniworld.identity import CLASSES, Identity, make_identities, make_identity
from flexip_miniworld.scene import Clip, Pose, SceneText, caption, parse_caption

__all__ = [
    "CLASSES",
    "Identity",
    "make_identity",
    "make_identities",
    "SceneText",
    "Pose",
    "Clip",
    "caption",
    "parse_caption",
]
