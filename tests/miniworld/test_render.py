import time

import numpy as np

import flexip_miniworld.render as render_module
from flexip_miniworld.identity import make_identity
from flexip_miniworld.render import compile_sprite, render
from flexip_miniworld.scene import BACKGROUNDS, STYLES, Pose, SceneText, sample_pose, sample_scene_text


def _clear_caches():
    compile_sprite.cache_clear()
    render_module.background_canvas.cache_clear()


def test_same_inputs_pixel_identical():
    rng = np.random.default_rng(0)
    cases = [(make_identity("train", i), sample_scene_text(rng), sample_pose(rng)) for i in range(12)]
    first = [render(*case) for case in cases]
    _clear_caches()
    second = [render(*case) for case in cases]
    for a, b in zip(first, second):
        assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
        assert np.array_equal(a, b)


def test_size_64():
    image = render(make_identity("train", 1), SceneText(background="city"), Pose(), size=64)
    assert image.shape == (64, 64, 3)


def test_identities_differ_more_than_jitter():
    """In one scene, two identities are further apart than one identity under small pose jitter."""
    rng = np.random.default_rng(5)
    identities = [make_identity("heldout", i) for i in range(12)]
    between, within = [], []
    for background in ("snow", "grass", "city", None):
        text = SceneText(background=background)
        base = Pose(pan=0.5, bg_variant=0)
        renders = [render(identity, text, base).astype(np.float32) for identity in identities]
        for i in range(len(renders)):
            for j in range(i + 1, len(renders)):
                between.append(np.abs(renders[i] - renders[j]).mean())
            jitter = sample_pose(rng, jitter=0.25)
            moved = Pose(dx=jitter.dx, dy=jitter.dy, scale=jitter.scale, angle=jitter.angle, pan=0.5, bg_variant=0)
            within.append(np.abs(renders[i] - render(identities[i], text, moved).astype(np.float32)).mean())
    assert np.mean(between) > 1.5 * np.mean(within)
    # Nearest neighbour by pixels recovers the identity from a jittered render.
    references = np.stack([render(identity, SceneText(), Pose(bg_variant=0)) for identity in identities]).astype(np.float32)
    hits = 0
    for index, identity in enumerate(identities):
        probe = render(identity, SceneText(), Pose(dx=0.02, dy=-0.01, scale=1.05, angle=0.05, bg_variant=0)).astype(np.float32)
        hits += int(np.argmin(np.abs(references - probe).mean(axis=(1, 2, 3))) == index)
    assert hits >= 11


def _subject_mask(image):
    """Pixels that differ from the plain backdrop (variant 0, camera centred) alone."""
    canvas = render_module.background_canvas(None, 0, 128)
    offset = (canvas.shape[1] - 128) // 2
    backdrop = render_module.downsample(canvas[:, offset : offset + 128] / 255.0, 32)
    return np.abs(image.astype(np.float32) - backdrop).sum(-1) > 30


def test_text_attributes_change_the_image():
    identity = make_identity("train", 3)
    plain = render(identity)
    for key in BACKGROUNDS:
        assert np.abs(render(identity, SceneText(background=key)).astype(int) - plain).mean() > 5, key
    for style in STYLES:
        assert np.abs(render(identity, SceneText(style=style)).astype(int) - plain).mean() > 3, style
    gray = render(identity, SceneText(style="grayscale")).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1
    red = render(identity, SceneText(colour="red")).astype(int)
    assert (red[..., 0] - red[..., 2]).mean() > (plain[..., 0].astype(int) - plain[..., 2]).mean() + 5

    xs = np.arange(32)
    centre = lambda image: (_subject_mask(image) * xs).sum() / _subject_mask(image).sum()  # noqa: E731
    assert centre(render(identity, SceneText(placement="left"))) < 13
    assert centre(render(identity, SceneText(placement="right"))) > 19
    area = lambda size: _subject_mask(render(identity, SceneText(size=size))).sum()  # noqa: E731
    assert area("small") < area(None) < area("big")


def test_render_speed():
    rng = np.random.default_rng(2)
    cases = [(make_identity("train", int(rng.integers(100))), sample_scene_text(rng), sample_pose(rng)) for _ in range(300)]
    for case in cases[:100]:
        render(*case)
    start = time.perf_counter()
    for case in cases[100:]:
        render(*case)
    rate = 200 / (time.perf_counter() - start)
    assert rate > 100, f"{rate:.0f} renders/s"  # ~700/s on one core of the 2-core dev machine


def test_every_word_of_the_vocabulary_has_its_table_entry():
    """The renderer's tables cover the scene and identity vocabularies exactly (a new word needs its drawing)."""
    from flexip_miniworld.identity import ACCESSORIES, CLASSES, PATTERNS
    from flexip_miniworld.render import backgrounds, body_plans, sprite, styles, subject
    from flexip_miniworld.scene import SHAPES

    assert set(backgrounds.SCENERY) == {None, *BACKGROUNDS}
    assert set(backgrounds.GRADIENTS) | {"fabric"} == set(backgrounds.SCENERY)
    assert set(styles.STYLES) == set(STYLES)
    assert set(subject.SHAPE_CHANGES) == set(SHAPES)
    assert set(sprite.PATTERNS) == set(PATTERNS)
    assert set(body_plans.BODY_PLANS) == set(body_plans.PROPORTIONS) == set(CLASSES)
    assert set(body_plans.ACCESSORIES) == set(ACCESSORIES) - {None}
