"""The miniworld: a procedural world of subjects and captioned scenes, for training and testing the
miniature FlexIP stack offline.

- `identity`: subjects — a class noun plus continuous parameters that text cannot describe;
  training and held-out identities come from disjoint seed ranges.
- `scene`: the text-addressable scene (backgrounds, placement, size, styles, property changes),
  the caption grammar and its parser, and pose/clip sampling.
- `render`: deterministic numpy + PIL rendering (supersampled, LANCZOS-downsampled).
- `dataset`: writing images, mp4 clips, multi-view captures, the training manifest and held-out files.

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
