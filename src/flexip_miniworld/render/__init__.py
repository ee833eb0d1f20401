"""Rendering miniworld scenes with numpy + PIL, deterministically.

A frame is drawn at `supersample`× the target size and downsampled with LANCZOS:

1. the background (`backgrounds`, drawn from the elements in `scenery`): a wide canvas per (kind, variant),
   cached, cropped at the camera pan;
2. the subject (`subject`, `body_plans`, `sprite`): evaluated implicitly — every pixel near the subject is mapped
   back through the pose (position, scale, rotation, squash) into the subject's own body coordinates, where the
   body (a superellipse with harmonic wobble), its pattern, marks, limbs, eyes and accessory are simple
   inside-tests. The transform therefore costs nothing extra and stays exact at any pose;
3. a dark silhouette outline, simple top-down shading, the scene's lighting;
4. the style (`styles`: sketch, grayscale, neon, sepia), then the LANCZOS downsample (`frames`).

Nothing here draws randomness at render time: the output is a pure function of
(identity, scene text, pose, size, supersample). `sheet` lays renders out as a contact sheet.
"""

from flexip_miniworld.render.backgrounds import background_canvas
from flexip_miniworld.render.frames import SUPERSAMPLE, downsample, render, render_background, render_hires, render_image, render_with_mask
from flexip_miniworld.render.scenery import BG_WIDTH
from flexip_miniworld.render.sheet import contact_sheet, default_sheet_columns
from flexip_miniworld.render.sprite import Sprite
from flexip_miniworld.render.subject import compile_sprite

__all__ = [
    "SUPERSAMPLE",
    "BG_WIDTH",
    "render",
    "render_image",
    "render_hires",
    "render_with_mask",
    "render_background",
    "downsample",
    "background_canvas",
    "compile_sprite",
    "Sprite",
    "contact_sheet",
    "default_sheet_columns",
]
