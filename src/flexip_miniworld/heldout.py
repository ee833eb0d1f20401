"""The held-out side of a dataset: each identity's test prompts (`heldout_prompt_texts`), its references, prompts and
true renders (`heldout_item`), and the calibration pairs (`calibration_pairs`).
"""

from __future__ import annotations

from dataclasses import asdict

from flexip_miniworld.identity import SEED_RANGE, make_identity
from flexip_miniworld.scene import (
    BACKGROUNDS,
    COLOURS,
    PATTERN_WORDS,
    PLACEMENTS,
    SHAPES,
    SIZES,
    STYLES,
    Pose,
    SceneText,
    caption,
    sample_pose,
)
from flexip_miniworld.world import WorldConfig, item_rng

REFERENCES_PER_IDENTITY = 3
PAIRS_PER_IDENTITY = 3


def heldout_prompt_texts(config: WorldConfig, index: int) -> list[SceneText]:
    """The 12 test scenes of held-out identity `index`, DreamBench-like: six recontextualisations
    (background only; `calibration_pairs` relies on them coming first), then a colour, a pattern, a
    shape, a style, a layout and a combined change."""
    rng = item_rng(config, "heldout", index)
    backgrounds = list(BACKGROUNDS)
    order = rng.permutation(len(backgrounds))
    texts = [SceneText(background=backgrounds[i]) for i in order[:6]]
    pick = lambda options: list(options)[int(rng.integers(len(options)))]  # noqa: E731
    texts.append(SceneText(colour=pick(COLOURS)))
    texts.append(SceneText(pattern=pick(PATTERN_WORDS), background=backgrounds[order[6]]))
    texts.append(SceneText(shape=pick(SHAPES)))
    texts.append(SceneText(style=pick(STYLES), background=backgrounds[order[7]]))
    texts.append(SceneText(size=pick(SIZES), placement=pick(PLACEMENTS), background=backgrounds[order[8]]))
    texts.append(SceneText(colour=pick(COLOURS), background=backgrounds[order[9]], style=pick(STYLES)))
    return texts


def heldout_item(config: WorldConfig, index: int) -> dict:
    """The held-out row of identity `index` plus what to render: {"row", "renders": [(path, text, pose)]}."""
    identity = make_identity("heldout", index, config.seed)
    rng = item_rng(config, "heldout", SEED_RANGE + index)
    folder = f"heldout/{identity.name}"
    renders = []
    references = []
    for r in range(REFERENCES_PER_IDENTITY):
        pose = sample_pose(rng, jitter=0.3)
        path = f"{folder}/ref_{r}.png"
        renders.append((path, SceneText(), Pose(**{**asdict(pose), "pan": 0.5})))
        references.append(path)
    texts = heldout_prompt_texts(config, index)
    targets = []
    for p, text in enumerate(texts):
        path = f"{folder}/target_{p:02d}.png"
        renders.append((path, text, sample_pose(rng)))
        targets.append(path)
    row = {
        "subject": identity.name,
        "noun": identity.noun,
        "references": references,
        "prompts": [caption(identity.noun, t) for t in texts],
        "targets": targets,
    }
    return {"row": row, "renders": renders}


def calibration_pairs(config: WorldConfig) -> list[dict]:
    """Real-vs-real pairs (one held-out identity in two background-only scenes) and real-vs-other
    pairs (the same scenes, two different identities)."""
    if config.heldout == 0:
        return []
    pairs = []
    rng = item_rng(config, "pairs", 0)
    for j in range(config.heldout):
        name = make_identity("heldout", j, config.seed).name
        # Targets 0..5 are the background-only prompts (see heldout_prompt_texts).
        for _ in range(PAIRS_PER_IDENTITY):
            a, b = rng.choice(6, size=2, replace=False)
            pairs.append(
                {
                    "kind": "real-vs-real",
                    "a": f"heldout/{name}/target_{a:02d}.png",
                    "b": f"heldout/{name}/target_{b:02d}.png",
                    "subject_a": name,
                    "subject_b": name,
                }
            )
        if config.heldout > 1:
            for _ in range(PAIRS_PER_IDENTITY):
                other = (j + 1 + int(rng.integers(config.heldout - 1))) % config.heldout
                other_name = make_identity("heldout", other, config.seed).name
                a, b = rng.choice(6, size=2, replace=False)
                pairs.append(
                    {
                        "kind": "real-vs-other",
                        "a": f"heldout/{name}/target_{a:02d}.png",
                        "b": f"heldout/{other_name}/target_{b:02d}.png",
                        "subject_a": name,
                        "subject_b": other_name,
                    }
                )
    return pairs
