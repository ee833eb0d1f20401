"""Miniworld scenes and their caption grammar.

A scene has two parts:

- `SceneText`: everything a caption says — background, placement, size, style and property changes
  (colour, pattern, shape). `caption()` writes it, `parse_caption()` reads it back exactly.
- `Pose`: continuous jitter no caption mentions — small offsets, scale, rotation, squash/stretch,
  camera pan, lighting and which variant of the background is drawn. Video clips animate the pose.

Grammar (DreamBench's form; every word and phrase comes from the fixed vocabularies below)::

    caption   := "a" [SIZE] [SHAPE] [COLOUR] [PATTERN] NOUN [PLACEMENT] [BACKGROUND] ["," STYLE]
    SIZE      := "small" | "big"
    SHAPE     := "boxy" | "round" | "spiky"
    COLOUR    := "red" | "blue" | "green" | "yellow" | "purple" | "white"
    PATTERN   := "striped" | "spotted"
    NOUN      := "blob" | "bot" | "bird" | "fish" | "bug" | "mushroom"
    PLACEMENT := "on the left" | "on the right"
    BACKGROUND:= "in the snow" | "on the beach" | "in the forest" | "at night" | "on the grass"
               | "in a city" | "on a table" | "underwater" | "in the desert" | "on pink fabric"
    STYLE     := "sketch" | "grayscale" | "neon" | "sepia"

Examples: "a blob in the snow", "a red bot", "a bird on the beach",
"a small spotted blob on the left in the snow, grayscale". No background phrase means the plain
studio backdrop that references are rendered on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import CLASSES

#: Background key → caption phrase. The key None is the plain backdrop (no phrase).
BACKGROUNDS: dict[str, str] = {
    "snow": "in the snow",
    "beach": "on the beach",
    "forest": "in the forest",
    "night": "at night",
    "grass": "on the grass",
    "city": "in a city",
    "table": "on a table",
    "underwater": "underwater",
    "desert": "in the desert",
    "fabric": "on pink fabric",
}
#: Placement key → caption phrase.
PLACEMENTS: dict[str, str] = {"left": "on the left", "right": "on the right"}
SIZES: tuple[str, ...] = ("small", "big")
SHAPES: tuple[str, ...] = ("boxy", "round", "spiky")
#: Colour words and the exact body colour each one paints (RGB in [0, 1]).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.1, 0.1),
    "blue": (0.1, 0.28, 0.92),
    "green": (0.12, 0.68, 0.18),
    "yellow": (0.98, 0.86, 0.08),
    "purple": (0.58, 0.16, 0.82),
    "white": (0.97, 0.97, 0.97),
}
#: Pattern words and the identity pattern each one forces.
PATTERN_WORDS: dict[str, str] = {"striped": "stripes", "spotted": "spots"}
STYLES: tuple[str, ...] = ("sketch", "grayscale", "neon", "sepia")

#: Words in a caption's fixed order between the article and the noun, by attribute.
_ADJECTIVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("size", SIZES),
    ("shape", SHAPES),
    ("colour", tuple(COLOURS)),
    ("pattern", tuple(PATTERN_WORDS)),
)


@dataclass(frozen=True)
class SceneText:
    """The text-addressable part of a scene. None = the default (plain, centred, normal size, as-is)."""

    background: str | None = None
    placement: str | None = None
    size: str | None = None
    style: str | None = None
    colour: str | None = None
    pattern: str | None = None
    shape: str | None = None

    def __post_init__(self) -> None:
        allowed = {
            "background": BACKGROUNDS,
            "placement": PLACEMENTS,
            "size": SIZES,
            "style": STYLES,
            "colour": COLOURS,
            "pattern": PATTERN_WORDS,
            "shape": SHAPES,
        }
        for name, vocabulary in allowed.items():
            value = getattr(self, name)
            if value is not None and value not in vocabulary:
                raise FlexIPInputError(f"scene {name} must be one of {sorted(vocabulary)} or None, got {value!r}")

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Pose:
    """Continuous scene parameters that no caption mentions (the renderer's per-frame state)."""

    dx: float = 0.0  # horizontal offset, fraction of the frame width
    dy: float = 0.0  # vertical offset, fraction of the frame height
    scale: float = 1.0  # multiplies the size the caption asks for
    angle: float = 0.0  # rotation, radians
    squash: float = 1.0  # >1 wider and flatter, <1 taller and thinner (area kept)
    pan: float = 0.5  # camera position over the wide background, 0..1
    light: float = 1.0  # brightness multiplier
    bg_variant: int = 0  # which procedural variant of the background


def caption(noun: str, text: SceneText) -> str:
    """Write the caption of `noun` in scene `text` (inverse of `parse_caption`)."""
    if noun not in CLASSES:
        raise FlexIPInputError(f"noun must be one of {CLASSES}, got {noun!r}")
    words = [getattr(text, attribute) for attribute, _ in _ADJECTIVES]
    words = [w for w in words if w is not None] + [noun]
    if text.placement is not None:
        words.append(PLACEMENTS[text.placement])
    if text.background is not None:
        words.append(BACKGROUNDS[text.background])
    body = " ".join(words)
    article = "an" if body[0] in "aeiou" else "a"
    sentence = f"{article} {body}"
    if text.style is not None:
        sentence += f", {text.style}"
    return sentence


def parse_caption(sentence: str) -> tuple[str, SceneText]:
    """Read a caption of the grammar back into (noun, SceneText); FlexIPInputError if it does not parse."""
    original = sentence
    sentence = " ".join(str(sentence).strip().lower().split())
    values: dict[str, str | None] = {}
    if "," in sentence:
        sentence, style = (part.strip() for part in sentence.rsplit(",", 1))
        if style not in STYLES:
            raise FlexIPInputError(f"unknown style {style!r} in caption {original!r}; styles: {STYLES}")
        values["style"] = style
    words = sentence.split(" ")
    if not words or words[0] not in ("a", "an"):
        raise FlexIPInputError(f"caption must start with 'a' or 'an': {original!r}")
    position = 1
    for attribute, vocabulary in _ADJECTIVES:
        if position < len(words) and words[position] in vocabulary:
            values[attribute] = words[position]
            position += 1
    if position >= len(words) or words[position] not in CLASSES:
        raise FlexIPInputError(f"expected a noun from {CLASSES} in caption {original!r}")
    noun = words[position]
    rest = " ".join(words[position + 1 :])
    for attribute, phrases in (("placement", PLACEMENTS), ("background", BACKGROUNDS)):
        for key, phrase in phrases.items():
            if rest == phrase or rest.startswith(phrase + " "):
                values[attribute] = key
                rest = rest[len(phrase) :].strip()
                break
    if rest:
        raise FlexIPInputError(f"could not read {rest!r} in caption {original!r}")
    return noun, SceneText(**values)


def _choice(rng: np.random.Generator, options, probability: float):
    """None with probability 1 - `probability`, else a uniform pick from `options`."""
    options = list(options)
    if rng.uniform() >= probability:
        return None
    return options[int(rng.integers(len(options)))]


#: Probabilities that a sampled training scene sets each attribute.
SCENE_PROBABILITIES: dict[str, float] = {
    "background": 0.9,
    "placement": 0.3,
    "size": 0.3,
    "style": 0.2,
    "colour": 0.15,
    "pattern": 0.12,
    "shape": 0.12,
}


def sample_scene_text(rng: np.random.Generator, probabilities: dict[str, float] | None = None) -> SceneText:
    """A random scene of the grammar; each attribute is set independently."""
    p = dict(SCENE_PROBABILITIES, **(probabilities or {}))
    return SceneText(
        background=_choice(rng, BACKGROUNDS, p["background"]),
        placement=_choice(rng, PLACEMENTS, p["placement"]),
        size=_choice(rng, SIZES, p["size"]),
        style=_choice(rng, STYLES, p["style"]),
        colour=_choice(rng, COLOURS, p["colour"]),
        pattern=_choice(rng, PATTERN_WORDS, p["pattern"]),
        shape=_choice(rng, SHAPES, p["shape"]),
    )


BG_VARIANTS = 8


def sample_pose(rng: np.random.Generator, jitter: float = 1.0) -> Pose:
    """Small random jitter around the captioned layout; `jitter` scales every deviation."""
    return Pose(
        dx=float(rng.uniform(-0.05, 0.05) * jitter),
        dy=float(rng.uniform(-0.04, 0.04) * jitter),
        scale=float(1.0 + rng.uniform(-0.1, 0.1) * jitter),
        angle=float(rng.uniform(-0.2, 0.2) * jitter),
        squash=float(1.0 + rng.uniform(-0.08, 0.08) * jitter),
        pan=float(0.5 + rng.uniform(-0.5, 0.5) * min(jitter, 1.0)),
        light=float(1.0 + rng.uniform(-0.12, 0.1) * jitter),
        bg_variant=int(rng.integers(BG_VARIANTS)),
    )


# ----------------------------------------------------------------------------------------------
# Video clips and multi-view captures


@dataclass(frozen=True)
class Clip:
    """Per-frame scene text and pose of one video clip (or one multi-view capture)."""

    texts: tuple[SceneText, ...]
    poses: tuple[Pose, ...]


#: Attribute probabilities for clips: the subject moves, so captions name no placement or size.
CLIP_PROBABILITIES: dict[str, float] = {
    "background": 0.9,
    "placement": 0.0,
    "size": 0.0,
    "style": 0.15,
    "colour": 0.1,
    "pattern": 0.1,
    "shape": 0.1,
}


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def sample_clip(rng: np.random.Generator, frames: int, switch_probability: float = 0.5) -> Clip:
    """A clip with continuous motion (move, hop, rotate, scale, squash/stretch), a camera pan and a
    lighting change; with `switch_probability` the background changes at one frame mid-clip."""
    if frames < 2:
        raise FlexIPInputError(f"a clip needs at least 2 frames, got {frames}")
    text = sample_scene_text(rng, CLIP_PROBABILITIES)
    texts = [text] * frames
    if rng.uniform() < switch_probability:
        at = int(rng.integers(max(1, frames // 4), max(2, (3 * frames) // 4 + 1)))
        others = [key for key in [None, *BACKGROUNDS] if key != text.background]
        new_background = others[int(rng.integers(len(others)))]
        texts[at:] = [replace(text, background=new_background)] * (frames - at)
    x0, x1 = rng.uniform(-0.2, 0.2, size=2)
    hops = int(rng.integers(0, 4))
    hop_height = rng.uniform(0.03, 0.1)
    a0 = rng.uniform(-0.3, 0.3)
    a1 = a0 + rng.uniform(-1.2, 1.2)
    s0, s1 = rng.uniform(0.75, 1.2, size=2)
    squash_amp, squash_freq, squash_phase = rng.uniform(0.0, 0.2), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
    p0, p1 = rng.uniform(0.0, 1.0, size=2)
    l0, l1 = rng.uniform(0.7, 1.15, size=2)
    variants = rng.integers(BG_VARIANTS, size=2)
    poses = []
    for i in range(frames):
        t = i / (frames - 1)
        smooth = t * t * (3 - 2 * t)
        poses.append(
            Pose(
                dx=float(_lerp(x0, x1, t)),
                dy=float(-hop_height * abs(np.sin(np.pi * hops * t))),
                scale=float(_lerp(s0, s1, smooth)),
                angle=float(_lerp(a0, a1, t)),
                squash=float(1.0 + squash_amp * np.sin(2 * np.pi * squash_freq * t + squash_phase)),
                pan=float(_lerp(p0, p1, t)),
                light=float(_lerp(l0, l1, t)),
                bg_variant=int(variants[0] if texts[i].background == text.background else variants[1]),
            )
        )
    return Clip(texts=tuple(texts), poses=tuple(poses))


def sample_views(rng: np.random.Generator, views: int) -> Clip:
    """A multi-view capture: one scene, the subject under different rotations, scales and squashes."""
    if views < 1:
        raise FlexIPInputError(f"a multi-view capture needs at least 1 view, got {views}")
    text = sample_scene_text(rng, dict(CLIP_PROBABILITIES, background=0.7))
    pan, light, variant = rng.uniform(0.0, 1.0), rng.uniform(0.85, 1.1), int(rng.integers(BG_VARIANTS))
    poses = tuple(
        Pose(
            dx=float(rng.uniform(-0.08, 0.08)),
            dy=float(rng.uniform(-0.05, 0.05)),
            scale=float(rng.uniform(0.8, 1.15)),
            angle=float(rng.uniform(-0.9, 0.9)),
            squash=float(rng.uniform(0.85, 1.15)),
            pan=float(pan),
            light=float(light),
            bg_variant=variant,
        )
        for _ in range(views)
    )
    return Clip(texts=(text,) * views, poses=poses)


def caption_spans(noun: str, texts) -> list[dict]:
    """Inclusive frame spans of equal captions: [{"start": 0, "end": 11, "caption": ...}, ...]."""
    spans: list[dict] = []
    for i, text in enumerate(texts):
        sentence = caption(noun, text)
        if spans and spans[-1]["caption"] == sentence:
            spans[-1]["end"] = i
        else:
            spans.append({"start": i, "end": i, "caption": sentence})
    return spans


__all__ = [
    "BACKGROUNDS",
    "PLACEMENTS",
    "SIZES",
    "SHAPES",
    "COLOURS",
    "PATTERN_WORDS",
    "STYLES",
    "SceneText",
    "Pose",
    "caption",
    "parse_caption",
    "sample_scene_text",
    "sample_pose",
    "Clip",
    "sample_clip",
    "sample_views",
    "caption_spans",
]
