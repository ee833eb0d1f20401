"""Body plans: the limbs, eyes and accessory each class of subject carries, as sprite primitives.

`PROPORTIONS` holds the sizes that vary with an identity's features (which feature drives which part);
`BODY_PLANS` places a class's parts around the compiled body, `ACCESSORIES` the accessory's; `parts` puts them
together. Public: `PROPORTIONS`, `proportion`, `Outline`, `outline`, `BODY_PLANS`, `ACCESSORIES`, `parts`, `tri`, `eye`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flexip_miniworld.identity import Identity
from flexip_miniworld.render.colours import BLACK, WHITE, mix
from flexip_miniworld.render.sprite import Sprite, body_point

#: Per class, sizes that grow with one of the identity's three features: name → (feature index, base, gain);
#: the size is base + gain · feature.
PROPORTIONS: dict[str, dict[str, tuple[int, float, float]]] = {
    "blob": {"foot": (0, 0.16, 0.12), "foot_spread": (1, 0.3, 0.2), "eye_height": (2, -0.1, -0.25)},
    "bot": {"antenna": (0, 0.3, 0.3), "leg_length": (1, 0.25, 0.25), "leg_width": (2, 0.09, 0.06)},
    "bird": {"beak": (0, 0.3, 0.25), "tail": (1, 0.4, 0.35), "wing": (2, 0.3, 0.2)},
    "fish": {"tail": (0, 0.45, 0.3), "fin": (1, 0.3, 0.25), "tail_spread": (2, 0.5, 0.2)},
    "bug": {"leg": (0, 0.3, 0.25), "antenna": (1, 0.35, 0.25), "antenna_spread": (1, 0.3, 0.2), "leg_width": (2, 0.055, 0.03)},
    "mushroom": {"stem_width": (0, 0.25, 0.15), "stem": (1, 0.6, 0.4), "cap_cut": (2, 0.1, 0.25)},
}


def proportion(identity: Identity, name: str) -> float:
    feature, base, gain = PROPORTIONS[identity.noun][name]
    return base + gain * identity.features[feature]


@dataclass(frozen=True)
class Outline:
    """Where the body's outline lies: its top and bottom v, its half-width on the facing side and on the back."""

    top: float
    bottom: float
    side: float
    back_side: float


def outline(sp: Sprite, facing: int) -> Outline:
    return Outline(
        top=body_point(sp, -math.pi / 2)[1],
        bottom=body_point(sp, math.pi / 2)[1],
        side=body_point(sp, 0.0 if facing > 0 else math.pi)[0] * facing,
        back_side=body_point(sp, math.pi if facing > 0 else 0.0)[0] * -facing,
    )


def tri(*points) -> tuple:
    """A triangle primitive with counter-clockwise (in y-down terms: consistent) orientation."""
    (x0, y0), (x1, y1), (x2, y2) = points
    if (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) < 0:
        (x1, y1), (x2, y2) = (x2, y2), (x1, y1)
    return ("tri", (x0, y0, x1, y1, x2, y2))


def eye(u: float, v: float, size: float, gaze: float) -> list:
    """A white eye with its pupil moved `gaze` (-1..1) of the way to the side."""
    return [
        ("ell", (u, v, size, size), WHITE),
        ("ell", (u + gaze * 0.4 * size, v, 0.55 * size, 0.55 * size), BLACK),
    ]


# Body plans: (identity, compiled body, its outline) → (primitives behind the body, primitives over it).


def _blob(identity: Identity, sp: Sprite, o: Outline) -> tuple[list, list]:
    aspect, es, gaze = sp.aspect, identity.eye_size, identity.eye_gaze
    foot, spread = proportion(identity, "foot"), proportion(identity, "foot_spread") * aspect
    back = [("ell", (su, o.bottom - 0.05, foot * 1.3, foot), identity.secondary) for su in (-spread, spread)]
    ev = proportion(identity, "eye_height")
    front = [part for su in (-0.32 * aspect, 0.32 * aspect) for part in eye(su, ev, es, gaze)]
    return back, front


def _bot(identity: Identity, sp: Sprite, o: Outline) -> tuple[list, list]:
    aspect, es, gaze = sp.aspect, identity.eye_size, identity.eye_gaze
    height = proportion(identity, "antenna")
    back = [("cap", (0.0, o.top + 0.1, 0.0, o.top - height, 0.06), identity.secondary)]
    front = [("ell", (0.0, o.top - height, 0.13, 0.13), identity.accent)]
    leg_w, leg_len = proportion(identity, "leg_width"), proportion(identity, "leg_length")
    for su in (-0.45 * aspect, 0.45 * aspect):
        back.append(("rect", (su - leg_w, o.bottom - 0.2, su + leg_w, o.bottom + leg_len), identity.secondary))
    for su in (-0.33 * aspect, 0.33 * aspect):
        front += eye(su, -0.25, es, gaze)
    return back, front


def _bird(identity: Identity, sp: Sprite, o: Outline) -> tuple[list, list]:
    aspect, fc, side, back_side = sp.aspect, identity.facing, o.side, o.back_side
    beak, tail = proportion(identity, "beak"), proportion(identity, "tail")
    back = [
        tri((fc * side * 0.85, -0.3), (fc * side * 0.85, 0.04), (fc * (side + beak), -0.12)) + (identity.accent,),
        tri((fc * back_side * 0.7, -0.05), (fc * (back_side + tail), -0.6), (fc * (back_side + tail), 0.1)) + (identity.secondary,),
    ]
    for su in (-0.2, 0.2):
        back.append(("cap", (su, o.bottom - 0.1, su + 0.05 * fc, o.bottom + 0.35, 0.05), identity.accent))
    front = [("ell", (-fc * 0.12 * aspect, 0.15, proportion(identity, "wing") * aspect, 0.28), identity.secondary)]
    front += eye(fc * 0.5 * side, -0.35, identity.eye_size, identity.eye_gaze * fc)
    return back, front


def _fish(identity: Identity, sp: Sprite, o: Outline) -> tuple[list, list]:
    fc, back_side = identity.facing, o.back_side
    tail, spread, fin = proportion(identity, "tail"), proportion(identity, "tail_spread"), proportion(identity, "fin")
    back = [
        tri((fc * back_side * 0.8, 0.0), (fc * (back_side + tail), -spread), (fc * (back_side + tail), spread)) + (identity.secondary,),
        tri((-0.45, o.top + 0.2), (0.35, o.top + 0.2), (-fc * 0.2, o.top - fin)) + (identity.secondary,),
    ]
    return back, eye(fc * 0.6 * o.side, -0.2, identity.eye_size, identity.eye_gaze * fc)


def _bug(identity: Identity, sp: Sprite, o: Outline) -> tuple[list, list]:
    aspect = sp.aspect
    length, thick = proportion(identity, "leg"), proportion(identity, "leg_width")
    back, front = [], []
    for sgn in (-1, 1):
        for lv in (-0.35, 0.1, 0.5):
            back.append(("cap", (sgn * 0.5 * aspect, lv, sgn * (aspect + length), lv + 0.25, thick), identity.secondary))
        tip = (sgn * proportion(identity, "antenna_spread"), o.top - proportion(identity, "antenna"))
        back.append(("cap", (sgn * 0.2 * aspect, o.top + 0.15, *tip, 0.04), identity.secondary))
        front.append(("ell", (*tip, 0.1, 0.1), identity.accent))
    for su in (-0.3 * aspect, 0.3 * aspect):
        front += eye(su, -0.35, identity.eye_size, identity.eye_gaze)
    return back, front


def _mushroom(identity: Identity, sp: Sprite, o: Outline) -> tuple[list, list]:
    cut, es, gaze = sp.cap_cut, identity.eye_size, identity.eye_gaze
    sw = proportion(identity, "stem_width") * sp.aspect * 0.7
    feature, base, gain = PROPORTIONS["mushroom"]["stem"]
    stem_bottom = cut + base + gain * identity.features[feature]  # added to the cut term by term, as the renders were made
    back = [("rect", (-sw, cut - 0.3, sw, stem_bottom), identity.accent), ("ell", (0.0, stem_bottom, sw, 0.12), identity.accent)]
    for su in (-0.45 * sw, 0.45 * sw):  # the eyes sit on the stem, under the cap
        back += [
            ("ell", (su, cut + 0.22, es * 0.8, es * 0.8), WHITE),
            ("ell", (su + gaze * 0.3 * es, cut + 0.22, es * 0.45, es * 0.45), BLACK),
        ]
    return back, []


#: Class noun (identity.CLASSES) → its body plan.
BODY_PLANS = {"blob": _blob, "bot": _bot, "bird": _bird, "fish": _fish, "bug": _bug, "mushroom": _mushroom}


# Accessories: (identity, compiled body, its outline, colour) → primitives over the body.


def _hat(identity: Identity, sp: Sprite, o: Outline, colour) -> list:
    return [("rect", (-0.5, o.top - 0.08, 0.5, o.top + 0.05), colour), ("rect", (-0.3, o.top - 0.5, 0.3, o.top - 0.04), colour)]


def _bow(identity: Identity, sp: Sprite, o: Outline, colour) -> list:
    pu, pv = body_point(sp, -math.pi / 2 - 0.6 * identity.facing)
    return [
        tri((pu, pv), (pu - 0.32, pv - 0.2), (pu - 0.32, pv + 0.2)) + (colour,),
        tri((pu, pv), (pu + 0.32, pv - 0.2), (pu + 0.32, pv + 0.2)) + (colour,),
        ("ell", (pu, pv, 0.09, 0.09), mix(colour, (0, 0, 0), 0.4)),
    ]


def _scarf(identity: Identity, sp: Sprite, o: Outline, colour) -> list:
    centre = (sp.cap_cut - 0.17) if sp.cap_cut is not None else 0.3
    return [("band", (centre - 0.12, centre + 0.12), colour), ("rect", (0.15 * sp.aspect, centre, 0.38 * sp.aspect, centre + 0.5), colour)]


#: Accessory (identity.ACCESSORIES, None = nothing) → its parts.
ACCESSORIES = {"hat": _hat, "bow": _bow, "scarf": _scarf}


def parts(identity: Identity, sp: Sprite) -> tuple[tuple, tuple]:
    """The (back, front) primitives of `identity` around its compiled body `sp`: the class's parts, then the accessory."""
    o = outline(sp, identity.facing)
    back, front = BODY_PLANS[identity.noun](identity, sp, o)
    if identity.accessory is not None:
        front += ACCESSORIES[identity.accessory](identity, sp, o, identity.accessory_colour)
    return tuple(back), tuple(front)
