import numpy as np
import pytest

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import CLASSES
from flexip_miniworld.scene import (
    BACKGROUNDS,
    COLOURS,
    PATTERN_WORDS,
    PLACEMENTS,
    SHAPES,
    SIZES,
    STYLES,
    SceneText,
    caption,
    caption_spans,
    parse_caption,
    sample_clip,
    sample_scene_text,
    sample_views,
)


def test_vocabulary_sizes():
    assert len(BACKGROUNDS) >= 8
    assert len(PLACEMENTS) + len(SIZES) >= 3
    assert len(STYLES) >= 3
    assert len(COLOURS) + len(PATTERN_WORDS) + len(SHAPES) >= 3


@pytest.mark.parametrize(
    "sentence, noun, text",
    [
        ("a blob in the snow", "blob", SceneText(background="snow")),
        ("a red bot", "bot", SceneText(colour="red")),
        ("a bird on the beach", "bird", SceneText(background="beach")),
        ("a small blob on the left in the snow, grayscale", "blob", SceneText("snow", "left", "small", "grayscale")),
        (
            "a big boxy purple striped fish on the right underwater, neon",
            "fish",
            SceneText("underwater", "right", "big", "neon", "purple", "striped", "boxy"),
        ),
        ("a mushroom", "mushroom", SceneText()),
    ],
)
def test_examples_round_trip(sentence, noun, text):
    assert parse_caption(sentence) == (noun, text)
    assert caption(noun, text) == sentence


def test_sampled_captions_round_trip():
    rng = np.random.default_rng(0)
    for i in range(2000):
        noun = CLASSES[i % len(CLASSES)]
        text = sample_scene_text(rng)
        assert parse_caption(caption(noun, text)) == (noun, text)


@pytest.mark.parametrize("bad", ["blob in the snow", "a dog in the snow", "a blob in the rain", "a blob, watercolor", "a striped red blob", ""])
def test_unparseable_captions_raise(bad):
    with pytest.raises(FlexIPInputError):
        parse_caption(bad)


def test_bad_scene_values_raise():
    with pytest.raises(FlexIPInputError):
        SceneText(background="moon")
    with pytest.raises(FlexIPInputError):
        caption("dog", SceneText())


def test_clip_spans_cover_every_frame():
    rng = np.random.default_rng(1)
    switched = 0
    for _ in range(40):
        clip = sample_clip(rng, 12)
        assert len(clip.texts) == len(clip.poses) == 12
        spans = caption_spans("bug", clip.texts)
        assert spans[0]["start"] == 0 and spans[-1]["end"] == 11
        for before, after in zip(spans, spans[1:]):
            assert after["start"] == before["end"] + 1
        switched += len(spans) > 1
        # The motion is continuous: neighbouring frames differ by small steps.
        dx = np.diff([p.dx for p in clip.poses])
        assert np.abs(dx).max() < 0.05
        assert all(t.placement is None and t.size is None for t in clip.texts)
    assert 5 < switched < 35
    views = sample_views(rng, 5)
    assert len(set(views.texts)) == 1 and len({p.angle for p in views.poses}) == 5
