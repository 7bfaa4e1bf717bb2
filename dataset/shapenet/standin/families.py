"""The 13 part-based shape families of the ShapeNet-13 stand-in (docs/shapenet.md).

Each family maps a random generator to parts (:mod:`dataset.shapenet.standin.parts`) and part colours, in a design
frame with ShapeNetCore.v1's axes (Y up, front +X, Z to the side); the builder then centres the bounding box
and scales its diagonal to 1. Every family has continuous parameters (proportions, thicknesses, angles,
colours) and discrete variants (listed in each docstring), so the set has category clusters and
within-category variation. Attached parts overlap a little, so no face of one part lies exactly on another's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dataset.shapenet.standin.parts import Part, box, cylinder, ellipsoid, lathe, prism, rotation

Colors = dict[str, tuple[float, float, float]]
Family = Callable[[np.random.Generator], tuple[list[Part], Colors]]

WOODS = [(0.45, 0.26, 0.12), (0.6, 0.4, 0.2), (0.3, 0.17, 0.08), (0.75, 0.58, 0.36)]
FABRICS = [(0.55, 0.08, 0.08), (0.12, 0.2, 0.5), (0.35, 0.35, 0.35), (0.2, 0.4, 0.22), (0.7, 0.62, 0.45)]
METALS = [(0.55, 0.55, 0.58), (0.08, 0.08, 0.08), (0.7, 0.55, 0.25)]
PAINTS = [(0.75, 0.08, 0.06), (0.1, 0.22, 0.6), (0.7, 0.7, 0.72), (0.05, 0.05, 0.05), (0.9, 0.9, 0.88),
          (0.85, 0.65, 0.05), (0.1, 0.4, 0.2)]  # fmt: skip
WHITE, DARK, GLASS = (0.85, 0.85, 0.83), (0.04, 0.04, 0.05), (0.08, 0.1, 0.14)


def _pick(rng: np.random.Generator, palette: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """A palette colour with a little jitter (continuous colour variation), clipped to [0, 1]."""
    base = np.asarray(palette[int(rng.integers(len(palette)))])
    return tuple(float(c) for c in np.clip(base * rng.uniform(0.85, 1.15) + rng.normal(0, 0.02, 3), 0.0, 1.0))


def _span(x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], material: str) -> Part:
    """Axis-aligned box from its extents (x0, x1), (y0, y1), (z0, z1)."""
    return box(
        ((x[0] + x[1]) / 2, (y[0] + y[1]) / 2, (z[0] + z[1]) / 2), (x[1] - x[0], y[1] - y[0], z[1] - z[0]), material
    )


def _legs(
    corners: list[tuple[float, float]], top: float, thickness: float, style: str, material: str, splay: float = 0.0
) -> list[Part]:
    """Vertical legs from the floor to ``top`` at (x, z) corners: "square" boxes or "round" cylinders,
    feet pushed outward by ``splay`` (fraction of the corner offset)."""
    legs = []
    for x, z in corners:
        if style == "square" and splay == 0:
            legs.append(box((x, top / 2, z), (thickness, top, thickness), material))
        else:
            foot = (x * (1 + splay), 0.0, z * (1 + splay))
            legs.append(cylinder(foot, (x, top, z), thickness / 2, material, segments=12))
    return legs


# --------------------------------------------------------------------------------------------- furniture


def chair(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Seat + back + 4 legs (+ arms). Variants: legs square/round/splayed; back panel/slats/frame; arms."""
    w, d, h, t = rng.uniform(0.42, 0.6), rng.uniform(0.4, 0.55), rng.uniform(0.38, 0.5), rng.uniform(0.03, 0.08)
    lt = rng.uniform(0.025, 0.05)
    style = ["square", "round", "splayed"][rng.integers(3)]
    parts = [box((0, h - t / 2, 0), (d, t, w), "seat")]
    inset_x, inset_z = d / 2 - lt, w / 2 - lt
    corners = [(sx * inset_x, sz * inset_z) for sx in (-1, 1) for sz in (-1, 1)]
    parts += _legs(
        corners, h - t / 2, lt, "round" if style == "splayed" else style, "legs", 0.12 * (style == "splayed")
    )
    bh, tilt, bt = rng.uniform(0.3, 0.6), rng.uniform(0, 18), rng.uniform(0.025, 0.06)
    pivot = (-d / 2 + bt / 2, h - t, 0)
    back_x = -d / 2 + bt / 2
    kind = ["panel", "slats", "frame"][rng.integers(3)]
    back: list[Part] = []
    if kind == "panel":
        back.append(box((back_x, h - t + bh / 2, 0), (bt, bh + 0.01, w - 0.006), "back"))
    else:
        post = min(0.05, w / 8)
        for sz in (-1, 1):
            back.append(box((back_x, h - t + bh / 2, sz * (w / 2 - post / 2 - 0.003)), (bt, bh, post), "legs"))
        back.append(box((back_x, h - t + bh - 0.04, 0), (bt * 0.9, 0.075, w - 0.01), "back"))
        if kind == "slats":
            n = int(rng.integers(2, 5))
            for z in np.linspace(-w / 2 + w / (n + 1), w / 2 - w / (n + 1), n):
                back.append(box((back_x, h - t + bh / 2, z), (bt * 0.6, bh - 0.02, w / (3 * n)), "back"))
        else:
            back.append(box((back_x, h - t + 0.1, 0), (bt * 0.9, 0.06, w - 0.01), "back"))
    parts += [part.rotated(rotation("z", tilt), pivot) for part in back]
    if rng.random() < 0.4:
        arm_h = rng.uniform(0.17, 0.26)
        for sz in (-1, 1):
            z = sz * (w / 2 + 0.02)
            parts.append(box((0, h + arm_h, z), (d * 0.9, 0.04, 0.06), "seat"))
            parts.append(box((d / 2 - 0.05, h + arm_h / 2, z - sz * 0.005), (0.04, arm_h + 0.02, 0.04), "legs"))
    seat_color = _pick(rng, FABRICS + WOODS)
    return parts, {"seat": seat_color, "back": seat_color, "legs": _pick(rng, METALS + WOODS)}


def table(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Top + legs / pedestal / trestle. Variants: rectangular or round top, 4 legs (square/round), a pedestal
    with a disc or cross foot, end panels; an apron."""
    height, t = rng.uniform(0.42, 0.78), rng.uniform(0.025, 0.06)
    round_top = rng.random() < 0.4
    parts: list[Part] = []
    if round_top:
        radius = rng.uniform(0.35, 0.6)
        parts.append(cylinder((0, height - t, 0), (0, height, 0), radius, "top", segments=32))
        half_x = half_z = radius / math.sqrt(2)
    else:
        length, width = rng.uniform(0.8, 1.6), rng.uniform(0.5, 0.9)
        if rng.random() < 0.5:
            length, width = width, length
        parts.append(box((0, height - t / 2, 0), (length, t, width), "top"))
        half_x, half_z = length / 2, width / 2
    support = ["legs", "pedestal", "trestle"][rng.integers(3 if not round_top else 2)]
    top_under = height - t + 0.005
    if support == "legs":
        lt = rng.uniform(0.03, 0.07)
        inset = rng.uniform(0.02, 0.08)
        corners = [(sx * (half_x - inset - lt / 2), sz * (half_z - inset - lt / 2)) for sx in (-1, 1) for sz in (-1, 1)]
        parts += _legs(corners, top_under, lt, ["square", "round"][rng.integers(2)], "legs")
        if rng.random() < 0.5 and not round_top:
            apron = rng.uniform(0.05, 0.1)
            x, z = half_x - inset - lt / 2, half_z - inset - lt / 2
            parts.append(box((0, top_under - apron / 2, z), (2 * x, apron, 0.02), "legs"))
            parts.append(box((0, top_under - apron / 2, -z), (2 * x, apron, 0.02), "legs"))
    elif support == "pedestal":
        column = rng.uniform(0.035, 0.08)
        parts.append(cylinder((0, 0.02, 0), (0, top_under, 0), column, "legs", segments=16))
        foot = rng.uniform(0.5, 0.9) * min(half_x, half_z) * 1.3
        if rng.random() < 0.5:
            parts.append(cylinder((0, 0, 0), (0, 0.03, 0), foot, "legs", segments=24))
        else:
            parts.append(box((0, 0.02, 0), (2 * foot, 0.04, 0.06), "legs"))
            parts.append(box((0, 0.02, 0), (0.06, 0.046, 2 * foot), "legs"))
    else:
        long_x = half_x >= half_z
        for s in (-1, 1):
            if long_x:
                parts.append(box((s * (half_x - 0.1), top_under / 2, 0), (0.04, top_under, 2 * half_z - 0.1), "legs"))
            else:
                parts.append(box((0, top_under / 2, s * (half_z - 0.1)), (2 * half_x - 0.1, top_under, 0.04), "legs"))
        span = (2 * half_x - 0.2, 0.05, 0.04) if long_x else (0.04, 0.05, 2 * half_z - 0.2)
        parts.append(box((0, top_under * 0.3, 0), span, "legs"))
    top = _pick(rng, WOODS + [WHITE, (0.1, 0.1, 0.1)])
    return parts, {"top": top, "legs": _pick(rng, WOODS + METALS) if rng.random() < 0.6 else top}


def sofa(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Base + back + arms + seat cushions. Variants: box/low/rolled/no arms; 1–3 cushions; a chaise end; legs."""
    width, depth = rng.uniform(1.3, 2.2), rng.uniform(0.75, 0.95)
    leg = rng.uniform(0.0, 0.1)
    seat = rng.uniform(0.36, 0.46)
    cushion = rng.uniform(0.08, 0.14)
    back_t, back_h = rng.uniform(0.15, 0.25), rng.uniform(0.7, 0.92)
    arms = ["box", "low", "rolled", "none"][rng.integers(4)]
    arm_w = rng.uniform(0.1, 0.22) if arms != "none" else 0.0
    base_top = seat - cushion
    # Extents chosen so that no two parts share a face plane where they overlap (no hidden or doubled surface).
    back_half = width / 2 - 0.004 if arms != "none" else width / 2
    base_half = width / 2 - arm_w / 2 if arms != "none" else width / 2 - 0.005
    rear = -depth / 2 + back_t / 2
    parts = [
        _span((-depth / 2, -depth / 2 + back_t), (leg + 0.006, back_h), (-back_half, back_half), "body"),
        _span((rear, depth / 2 - 0.005), (leg + 0.008, base_top), (-base_half, base_half), "body"),
    ]
    if arms != "none":
        arm_h = {"box": rng.uniform(0.55, 0.7), "low": seat + 0.06, "rolled": rng.uniform(0.5, 0.62)}[arms]
        for s in (-1, 1):
            z = s * (width / 2 - arm_w / 2)
            parts.append(_span((rear, depth / 2), (leg, arm_h), (z - arm_w / 2, z + arm_w / 2), "body"))
            if arms == "rolled":
                parts.append(cylinder((-depth / 2 + 0.01, arm_h, z), (depth / 2 + 0.03, arm_h, z), arm_w * 0.6, "body"))
    n = int(rng.integers(1, 4))
    inner = width - 2 * arm_w
    cushion_w = inner / n
    for k in range(n):
        z = -inner / 2 + cushion_w * (k + 0.5)
        parts.append(
            box(
                (back_t / 2 + 0.01, base_top + cushion / 2 - 0.005, z),
                (depth - back_t - 0.02, cushion, cushion_w - 0.02),
                "cushion",
            )
        )
    if rng.random() < 0.25:
        s = 1 if rng.random() < 0.5 else -1
        extra = rng.uniform(0.5, 0.8)
        zc = s * (width / 2 - arm_w - inner / 4)
        chaise = (
            (depth / 2 - 0.01, depth / 2 - 0.01 + extra),
            (leg + 0.007, seat),
            (zc - inner / 4 + 0.003, zc + inner / 4 - 0.003),
        )
        parts.append(_span(*chaise, "cushion"))
    if leg > 0.03:
        corners = [(sx * (depth / 2 - 0.05), sz * (width / 2 - 0.05)) for sx in (-1, 1) for sz in (-1, 1)]
        parts += _legs(corners, leg + 0.01, 0.04, "round", "legs")
    fabric = _pick(rng, FABRICS)
    cushion_color = fabric if rng.random() < 0.6 else _pick(rng, FABRICS)
    return parts, {"body": fabric, "cushion": cushion_color, "legs": _pick(rng, WOODS + METALS)}


def bench(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """A long seat (slab or slats) on legs, end panels or A-frames (+ a slatted back)."""
    length, depth, height = rng.uniform(1.0, 1.8), rng.uniform(0.3, 0.5), rng.uniform(0.4, 0.5)
    t = rng.uniform(0.03, 0.06)
    parts: list[Part] = []
    if rng.random() < 0.5:
        parts.append(box((0, height - t / 2, 0), (depth, t, length), "seat"))
    else:
        n = int(rng.integers(3, 6))
        slat = depth / n
        for k in range(n):
            parts.append(box((-depth / 2 + slat * (k + 0.5), height - t / 2, 0), (slat * 0.8, t, length), "seat"))
    under = height - t + 0.005
    support = ["legs", "panels", "aframe"][rng.integers(3)]
    end = length / 2 - rng.uniform(0.05, 0.2)
    if support == "legs":
        corners = [(sx * (depth / 2 - 0.04), sz * end) for sx in (-1, 1) for sz in (-1, 1)]
        parts += _legs(corners, under, rng.uniform(0.04, 0.06), ["square", "round"][rng.integers(2)], "frame")
    elif support == "panels":
        for s in (-1, 1):
            parts.append(box((0, under / 2, s * end), (depth * rng.uniform(0.8, 1.0), under, 0.05), "frame"))
    else:
        for s in (-1, 1):
            for sx in (-1, 1):
                parts.append(
                    cylinder((sx * depth * 0.55, 0, s * end), (0, under, s * end), 0.025, "frame", segments=12)
                )
        parts.append(box((0, under * 0.4, 0), (0.04, 0.04, 2 * end), "frame"))
    if rng.random() < 0.5:
        back_h, tilt = rng.uniform(0.3, 0.45), rng.uniform(5, 20)
        x = -depth / 2 + 0.02
        pivot = (x, height, 0)
        back = [box((x, height + back_h / 2 - 0.01, sz * end), (0.04, back_h, 0.05), "frame") for sz in (-1, 1)]
        for k in range(int(rng.integers(2, 4))):
            back.append(box((x + 0.015, height + back_h * (0.35 + 0.27 * k), 0), (0.025, 0.07, 2 * end + 0.1), "seat"))
        parts += [part.rotated(rotation("z", tilt), pivot) for part in back]
    return parts, {"seat": _pick(rng, WOODS + [(0.2, 0.35, 0.2)]), "frame": _pick(rng, METALS + [(0.5, 0.5, 0.48)])}


def cabinet(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """A body with doors or drawers on the front (+X), handles, a plinth or feet, an overhanging top."""
    width, depth, height = rng.uniform(0.5, 1.2), rng.uniform(0.35, 0.6), rng.uniform(0.6, 1.8)
    base = rng.uniform(0.0, 0.1)
    parts = [box((0, base + (height - base) / 2, 0), (depth, height - base, width), "body")]
    front_x = depth / 2 + 0.005
    gap = 0.012
    fronts = ["doors2", "door1", "drawers", "mixed"][rng.integers(4)]
    knobs = rng.random() < 0.5
    bottom, top = base + 0.02, height - 0.02

    def panel(y0: float, y1: float, z0: float, z1: float, side: int) -> None:
        """A door or drawer front over [y0, y1] × [z0, z1]; its handle near the z0 (−1) or z1 (+1) edge or
        centred (0)."""
        parts.append(box((front_x, (y0 + y1) / 2, (z0 + z1) / 2), (0.02, y1 - y0 - gap, z1 - z0 - gap), "front"))
        bar = min(0.12, (z1 - z0) * 0.4)
        reach = 0.04 if knobs else 0.03 + bar / 2
        hy, hz = (y0 + y1) / 2, {0: (z0 + z1) / 2, 1: z1 - reach, -1: z0 + reach}[side]
        if knobs:
            parts.append(cylinder((front_x + 0.005, hy, hz), (front_x + 0.04, hy, hz), 0.015, "handle", segments=10))
        else:
            parts.append(box((front_x + 0.02, hy, hz), (0.03, 0.02, bar), "handle"))

    z0, z1 = -width / 2 + 0.02, width / 2 - 0.02
    if fronts in ("drawers", "mixed"):
        n = int(rng.integers(2, 5))
        split = top if fronts == "drawers" else bottom + (top - bottom) * rng.uniform(0.3, 0.6)
        edges = np.linspace(bottom, split, n + 1)
        for y0, y1 in zip(edges[:-1], edges[1:], strict=True):
            panel(y0, y1, z0, z1, 0)
        bottom = split
    if fronts != "drawers":
        if fronts == "door1":
            panel(bottom, top, z0, z1, 1)
        else:
            panel(bottom, top, z0, 0.0, 1)
            panel(bottom, top, 0.0, z1, -1)
    if base > 0.03:
        if rng.random() < 0.5:
            parts.append(box((0, base / 2 + 0.005, 0), (depth - 0.06, base + 0.01, width - 0.06), "body"))
        else:
            corners = [(sx * (depth / 2 - 0.04), sz * (width / 2 - 0.04)) for sx in (-1, 1) for sz in (-1, 1)]
            parts += _legs(corners, base + 0.01, 0.04, "round", "handle")
    if rng.random() < 0.4:
        parts.append(box((0.01, height + 0.012, 0), (depth + 0.04, 0.03, width + 0.04), "body"))
    body = _pick(rng, WOODS + [WHITE, (0.4, 0.4, 0.42)])
    front = body if rng.random() < 0.6 else _pick(rng, WOODS + [WHITE])
    return parts, {"body": body, "front": front, "handle": _pick(rng, METALS)}


# --------------------------------------------------------------------------------------------- electronics


def display(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """A screen facing +X in a bezel. Variants: flat panel on a neck with a plate or disc base; CRT (deep
    tapered back) on a low foot; wall panel (no stand)."""
    width = rng.uniform(0.5, 0.7)
    screen_h = width / rng.uniform(1.25, 1.85)
    bezel_t, border = rng.uniform(0.02, 0.05), rng.uniform(0.01, 0.035)
    kind = ["flat", "crt", "wall"][rng.integers(3)]
    lift = {"flat": rng.uniform(0.08, 0.2), "crt": 0.04, "wall": 0.0}[kind]
    yc = lift + screen_h / 2
    parts = [box((0, yc, 0), (bezel_t, screen_h, width), "bezel")]
    parts.append(box((bezel_t / 2, yc, 0), (0.01, screen_h - 2 * border, width - 2 * border), "screen"))
    if kind == "flat":
        parts.append(box((-bezel_t / 2 - 0.012, (0.02 + yc) / 2, 0), (0.03, yc - 0.01, 0.06), "bezel"))
        if rng.random() < 0.5:
            parts.append(box((0, 0.01, 0), (rng.uniform(0.15, 0.25), 0.02, rng.uniform(0.2, 0.35)), "bezel"))
        else:
            parts.append(cylinder((0, 0, 0), (0, 0.02, 0), rng.uniform(0.08, 0.14), "bezel", segments=24))
    elif kind == "crt":
        deep = rng.uniform(0.35, 0.55) * width
        profile = [
            (-bezel_t / 2 + 0.005, lift),
            (-bezel_t / 2 + 0.005, lift + screen_h),
            (-bezel_t / 2 - deep, yc + screen_h * 0.25),
            (-bezel_t / 2 - deep, yc - screen_h * 0.25),
        ]
        parts.append(prism(profile, width * rng.uniform(0.3, 0.45), "bezel"))
        parts.append(box((-deep * 0.3, lift / 2 + 0.005, 0), (deep * 0.5, lift + 0.01, width * 0.5), "bezel"))
    else:
        parts.append(box((-bezel_t / 2 - 0.013, yc, 0), (0.034, screen_h * 0.6, width * 0.6), "bezel"))
    return parts, {"bezel": _pick(rng, [(0.05, 0.05, 0.05), (0.5, 0.5, 0.52), WHITE]), "screen": (0.01, 0.02, 0.05)}


def loudspeaker(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """A cabinet with driver cones on the front (+X). Variants: tower on feet, bookshelf box on a stand,
    cylinder, cube subwoofer; 1–3 drivers."""
    kind = ["tower", "bookshelf", "cylinder", "sub"][rng.integers(4)]
    parts: list[Part] = []
    if kind == "cylinder":
        radius, height = rng.uniform(0.1, 0.18), rng.uniform(0.35, 0.8)
        parts.append(cylinder((0, 0, 0), (0, height, 0), radius, "body", segments=28))
        face_x, width, bottom = radius * 0.97, radius * 1.2, 0.0
    else:
        width, depth, height = {
            "tower": (rng.uniform(0.2, 0.3), rng.uniform(0.25, 0.35), rng.uniform(0.8, 1.1)),
            "bookshelf": (rng.uniform(0.18, 0.26), rng.uniform(0.2, 0.3), rng.uniform(0.3, 0.45)),
            "sub": (rng.uniform(0.35, 0.45), rng.uniform(0.35, 0.45), rng.uniform(0.35, 0.45)),
        }[kind]
        bottom = 0.0
        if kind == "bookshelf" and rng.random() < 0.6:
            bottom = rng.uniform(0.5, 0.7)
            parts.append(cylinder((0, 0.015, 0), (0, bottom + 0.01, 0), 0.025, "trim", segments=12))
            parts.append(box((0, 0.01, 0), (depth, 0.02, width), "trim"))
            parts.append(box((0, bottom - 0.005, 0), (depth * 0.8, 0.02, width * 0.8), "trim"))
        elif kind == "tower":
            bottom = 0.03
            parts.append(box((0, 0.02, 0), (depth + 0.04, 0.04, width + 0.04), "trim"))
        parts.append(box((0, bottom + height / 2, 0), (depth, height, width), "body"))
        face_x = depth / 2
    n = {"tower": int(rng.integers(2, 4)), "bookshelf": 2, "cylinder": int(rng.integers(1, 3)), "sub": 1}[kind]
    sizes = sorted(rng.uniform(0.12, 0.4, size=n))[::-1]
    slots = np.linspace(bottom + height * 0.25, bottom + height * 0.8, n) if n > 1 else [bottom + height * 0.5]
    for k, y in enumerate(slots):
        radius = min(sizes[k] * width, height / (2.6 * n) + 0.02, width * 0.42)
        depth_cone = radius * rng.uniform(0.25, 0.45)
        parts.append(
            cylinder((face_x - 0.01, y, 0), (face_x + depth_cone, y, 0), radius, "driver", radius_b=radius * 0.35)
        )
    body = _pick(rng, [(0.05, 0.05, 0.05), (0.4, 0.22, 0.1), WHITE, (0.35, 0.35, 0.37)])
    return parts, {
        "body": body,
        "driver": _pick(rng, [(0.12, 0.12, 0.13), (0.6, 0.6, 0.62)]),
        "trim": _pick(rng, METALS),
    }


def telephone(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """An upright handset facing +X. Variants: smartphone slab (camera bump), keypad phone (key grid),
    cordless (thick, antenna); proportions, screen size."""
    kind = ["smartphone", "keypad", "cordless"][rng.integers(3)]
    height = rng.uniform(0.13, 0.17)
    width = height * rng.uniform(0.4, 0.52) if kind == "smartphone" else height * rng.uniform(0.33, 0.42)
    thick = {"smartphone": rng.uniform(0.007, 0.012), "keypad": rng.uniform(0.015, 0.022), "cordless": 0.03}[kind]
    r = min(width * 0.25, 0.012)  # rounded corners as an octagon
    outline = [
        (-width / 2 + r, 0),
        (width / 2 - r, 0),
        (width / 2, r),
        (width / 2, height - r),
        (width / 2 - r, height),
        (-width / 2 + r, height),
        (-width / 2, height - r),
        (-width / 2, r),
    ]
    parts = [prism(outline, thick / 2, "body", plane="zy")]
    face = thick / 2
    if kind == "smartphone":
        margin = rng.uniform(0.003, 0.008)
        parts.append(box((face, height / 2, 0), (0.002, height - 2 * margin - 0.01, width - 2 * margin), "screen"))
        parts.append(box((-face, height * 0.88, width * 0.2), (0.004, 0.02, 0.02), "keys"))
    else:
        screen_top = height * 0.92
        screen_h = height * rng.uniform(0.25, 0.4)
        parts.append(box((face, screen_top - screen_h / 2, 0), (0.003, screen_h, width * 0.75), "screen"))
        rows = 4
        pitch_y = (screen_top - screen_h - 0.015 - height * 0.08) / rows
        for i in range(rows):
            for j in (-1, 0, 1):
                y = height * 0.08 + pitch_y * (i + 0.5)
                parts.append(box((face, y, j * width * 0.27), (0.005, pitch_y * 0.6, width * 0.2), "keys"))
        if kind == "cordless" or rng.random() < 0.4:
            ant = rng.uniform(0.03, 0.07)
            parts.append(
                cylinder((0, height - 0.005, width * 0.3), (0, height + ant, width * 0.3), 0.005, "body", segments=10)
            )
    body = _pick(rng, [(0.05, 0.05, 0.05), WHITE, (0.6, 0.6, 0.62), (0.6, 0.08, 0.08), (0.1, 0.2, 0.5)])
    return parts, {
        "body": body,
        "screen": (0.02, 0.03, 0.06),
        "keys": _pick(rng, [(0.5, 0.5, 0.5), (0.15, 0.15, 0.15)]),
    }


# --------------------------------------------------------------------------------------------- vehicles


def airplane(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Fuselage + swept wings + tail. Variants: low/mid/high wing, conventional or T-tail, 0/2/4 engines;
    span, chord, taper, sweep, dihedral, fuselage radius."""
    length = 1.0
    radius = rng.uniform(0.045, 0.075)
    nose = rng.uniform(0.08, 0.16)
    profile = [(radius * 0.25, 0.0), (radius * 0.8, 0.12), (radius, 0.3), (radius, 0.75),
               (radius * 0.9, 1.0 - nose), (radius * 0.55, 1.0 - nose * 0.4), (0.0, 1.0)]  # fmt: skip
    parts = [
        lathe([(r, y * length) for r, y in profile], "body", base=(-length / 2, 0, 0), axis=(1, 0, 0), segments=20)
    ]
    span, root, taper = rng.uniform(0.8, 1.25), rng.uniform(0.15, 0.26), rng.uniform(0.25, 0.6)
    sweep = math.tan(math.radians(rng.uniform(0, 35)))
    x_root = rng.uniform(-0.02, 0.12)
    y_wing = [-0.6, 0.0, 0.7][rng.integers(3)] * radius
    dihedral = rng.uniform(0, 7)
    thick = rng.uniform(0.01, 0.018)
    half = span / 2
    for s in (-1, 1):
        tip_le = x_root - half * sweep
        root_z = -s * 0.005  # the halves overlap across the symmetry plane: no face-to-face contact
        wing = [(x_root, root_z), (tip_le, s * half), (tip_le - root * taper, s * half), (x_root - root, root_z)]
        part = prism(wing, thick / 2, "wing", plane="xz", center=(0, y_wing, 0))
        parts.append(part.rotated(rotation("x", -s * dihedral), (0, y_wing, 0)))
    tail_x = -length / 2 + 0.02
    fin_h, fin_c = rng.uniform(0.12, 0.2), rng.uniform(0.1, 0.16)
    fin_sweep = rng.uniform(0.03, 0.1)
    fin = [
        (tail_x, 0.0),
        (tail_x + fin_c, 0.0),
        (tail_x + fin_sweep + fin_c * 0.45, fin_h),
        (tail_x + fin_sweep, fin_h),
    ]
    parts.append(prism(fin, thick / 2, "tail"))
    t_tail = rng.random() < 0.3
    stab_y = fin_h - 0.01 if t_tail else 0.0
    stab_span, stab_c = rng.uniform(0.28, 0.42), rng.uniform(0.07, 0.12)
    x0 = tail_x + (fin_sweep if t_tail else 0.0)
    stab = [(x0, -stab_span / 2), (x0 + stab_c * 0.6, -stab_span / 2), (x0 + stab_c, 0.0),
            (x0 + stab_c * 0.6, stab_span / 2), (x0, stab_span / 2)]  # fmt: skip
    parts.append(prism(stab, thick * 0.4, "tail", plane="xz", center=(0, stab_y, 0)))
    engines = [0, 2, 4][rng.choice(3, p=[0.25, 0.5, 0.25])]
    er, el = rng.uniform(0.022, 0.038), rng.uniform(0.12, 0.18)
    stations = [0.35] if engines == 2 else [0.3, 0.6] if engines == 4 else []
    for station in stations:
        for s in (-1, 1):
            z = s * station * half
            x_le = x_root - station * half * sweep
            y = y_wing - thick / 2 - er * 0.9
            part = cylinder((x_le - el * 0.6, y, z), (x_le + el * 0.4, y, z), er, "engine", segments=14)
            parts.append(part.rotated(rotation("x", -s * dihedral), (0, y_wing, 0)))
            pylon = box(
                (x_le - el * 0.1, y_wing - thick / 2 - er * 0.45, z), (el * 0.5, er * 0.9 + 0.004, 0.006), "wing"
            )
            parts.append(pylon.rotated(rotation("x", -s * dihedral), (0, y_wing, 0)))
    body = _pick(rng, [WHITE, (0.7, 0.7, 0.72), (0.55, 0.65, 0.8)])
    return parts, {"body": body, "wing": body if rng.random() < 0.5 else _pick(rng, [(0.6, 0.6, 0.62), WHITE]),
                   "tail": _pick(rng, PAINTS), "engine": _pick(rng, [(0.4, 0.4, 0.42), WHITE])}  # fmt: skip


def car(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Body (side profile) + cabin + 4 wheels. Variants: sedan, hatchback, SUV, pickup; width, heights,
    wheel size and wheelbase, colours."""
    length = 1.0
    kind = ["sedan", "hatchback", "suv", "pickup"][rng.integers(4)]
    width = rng.uniform(0.38, 0.48)
    clearance = rng.uniform(0.04, 0.08) + 0.03 * (kind == "suv")
    body_h = rng.uniform(0.13, 0.2) + 0.04 * (kind in ("suv", "pickup"))
    y0, y1 = clearance, clearance + body_h
    bf, br = rng.uniform(0.05, 0.12), rng.uniform(0.03, 0.08)
    side = [(-length / 2, y0 + 0.3 * body_h), (-length / 2 + br, y0), (length / 2 - bf, y0),
            (length / 2, y0 + 0.4 * body_h), (length / 2 - bf, y1), (-length / 2 + br * 0.5, y1)]  # fmt: skip
    parts = [prism(side, width / 2, "body")]
    cabin_h = rng.uniform(0.11, 0.17) + 0.04 * (kind == "suv")
    base_rear, base_front = {
        "sedan": (-0.3, 0.22), "hatchback": (-0.47, 0.22), "suv": (-0.48, 0.26), "pickup": (-0.08, 0.24),
    }[kind]  # fmt: skip
    base_rear += rng.uniform(-0.03, 0.03)
    base_front += rng.uniform(-0.04, 0.04)
    rake_f, rake_r = rng.uniform(0.1, 0.2), (rng.uniform(0.1, 0.2) if kind == "sedan" else rng.uniform(0.0, 0.05))
    cabin = [(base_rear, y1 - 0.01), (base_front, y1 - 0.01), (base_front - rake_f, y1 + cabin_h),
             (base_rear + rake_r, y1 + cabin_h)]  # fmt: skip
    parts.append(prism(cabin, width / 2 * rng.uniform(0.8, 0.92), "glass"))
    if kind == "pickup":
        parts.append(box((-0.3, y1 + 0.025, 0), (0.36, 0.06, width - 0.006), "body"))
    wheel_r, wheel_w = rng.uniform(0.07, 0.1), rng.uniform(0.05, 0.08)
    axle_f, axle_r = length / 2 - rng.uniform(0.14, 0.22), -length / 2 + rng.uniform(0.14, 0.22)
    for x in (axle_r, axle_f):
        for s in (-1, 1):
            z_out = s * (width / 2 + 0.01)
            parts.append(
                cylinder((x, wheel_r, z_out - s * wheel_w), (x, wheel_r, z_out), wheel_r, "wheel", segments=20)
            )
    return parts, {"body": _pick(rng, PAINTS), "glass": GLASS, "wheel": (0.03, 0.03, 0.03)}


def vessel(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """A hull with a pointed bow (+X) and a keel. Variants: sailboat (mast, main sail, jib), motorboat
    (cabin with windscreen), ship (stacked superstructure, funnels), rowboat (thwarts)."""
    length = 1.0
    kind = ["sailboat", "motorboat", "ship", "rowboat"][rng.integers(4)]
    beam = rng.uniform(0.16, 0.3) * (0.8 if kind == "ship" else 1.0)
    depth = rng.uniform(0.07, 0.13)
    stern = rng.uniform(0.55, 0.9)
    widest = rng.uniform(-0.05, 0.15)
    top = [(-length / 2, -beam / 2 * stern), (widest, -beam / 2), (length / 2, 0.0), (widest, beam / 2),
           (-length / 2, beam / 2 * stern)]  # fmt: skip
    parts = [prism(top, depth / 2, "hull", plane="xz", center=(0, depth / 2, 0))]
    keel = [(-beam * 0.4, 0.01), (beam * 0.4, 0.01), (0.0, -depth * rng.uniform(0.4, 0.8))]
    parts.append(prism(keel, length * 0.38, "hull", plane="zy", center=(-0.05, 0, 0)))
    deck = depth
    if kind == "sailboat":
        mast_x, mast_h = rng.uniform(0.0, 0.15), rng.uniform(0.7, 1.1)
        parts.append(cylinder((mast_x, deck - 0.01, 0), (mast_x, deck + mast_h, 0), 0.008, "mast", segments=8))
        boom = rng.uniform(0.3, 0.45)
        sail = [(mast_x - 0.01, deck + 0.06), (mast_x - 0.01, deck + mast_h * 0.95), (mast_x - boom, deck + 0.06)]
        parts.append(prism(sail, 0.003, "sail"))
        if rng.random() < 0.6:
            jib = [(mast_x + 0.01, deck + 0.03), (length / 2 - 0.05, deck + 0.03), (mast_x + 0.01, deck + mast_h * 0.8)]
            parts.append(prism(jib, 0.003, "sail"))
    elif kind == "motorboat":
        cx, cl, ch = rng.uniform(-0.15, 0.05), rng.uniform(0.2, 0.35), rng.uniform(0.06, 0.1)
        cabin = [(cx - cl / 2, deck - 0.005), (cx + cl / 2, deck - 0.005), (cx + cl / 2 - ch * 0.8, deck + ch),
                 (cx - cl / 2, deck + ch)]  # fmt: skip
        parts.append(prism(cabin, beam * 0.32, "cabin"))
    elif kind == "ship":
        levels = int(rng.integers(1, 4))
        x, w, span = rng.uniform(-0.2, 0.05), beam * 0.7, rng.uniform(0.3, 0.45)
        y = deck - 0.005
        for _ in range(levels):
            h = rng.uniform(0.04, 0.07)
            parts.append(box((x, y + h / 2, 0), (span, h, w), "cabin"))
            y += h - 0.005
            span *= rng.uniform(0.55, 0.8)
            w *= 0.85
        for k in range(int(rng.integers(1, 3))):
            fx = x - span * 0.3 - 0.06 * k
            parts.append(
                cylinder((fx, y - 0.01, 0), (fx, y + rng.uniform(0.06, 0.12), 0), 0.025, "funnel", segments=14)
            )
    else:
        for k in range(int(rng.integers(2, 4))):
            x = -0.25 + 0.22 * k
            parts.append(box((x, depth * 0.85, 0), (0.05, 0.015, beam * 0.8), "cabin"))
    hull = _pick(rng, [WHITE, (0.6, 0.08, 0.06), (0.1, 0.18, 0.45), (0.05, 0.05, 0.05), (0.1, 0.3, 0.15)])
    return parts, {
        "hull": hull,
        "cabin": _pick(rng, [WHITE, (0.6, 0.45, 0.25)]),
        "mast": (0.4, 0.3, 0.2),
        "sail": (0.95, 0.93, 0.85),
        "funnel": _pick(rng, [(0.7, 0.1, 0.05), DARK, (0.85, 0.65, 0.05)]),
    }


# --------------------------------------------------------------------------------------------- others


def lamp(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Base + pole + shade. Variants: disc/square base; straight or bent arm; cone, drum, globe or dome
    shade; desk to floor heights."""
    pole_h = rng.uniform(0.35, 1.2)
    base_r = rng.uniform(0.08, 0.18) * (1 + pole_h / 2)
    base_t = rng.uniform(0.02, 0.05)
    parts: list[Part] = []
    if rng.random() < 0.6:
        parts.append(cylinder((0, 0, 0), (0, base_t, 0), base_r, "metal", segments=24))
    else:
        parts.append(box((0, base_t / 2, 0), (base_r * 1.6, base_t, base_r * 1.6), "metal"))
    pole_r = rng.uniform(0.01, 0.022)
    parts.append(cylinder((0, base_t - 0.005, 0), (0, pole_h, 0), pole_r, "metal", segments=12))
    top = np.array([0.0, pole_h, 0.0])
    down = False
    if rng.random() < 0.4:
        angle = math.radians(rng.uniform(30, 70))
        arm = rng.uniform(0.2, 0.4)
        direction = np.array([math.sin(angle), math.cos(angle), 0.0]) * (1 if rng.random() < 0.7 else -1)
        end = top + arm * direction
        parts.append(cylinder(top - 0.01 * direction, end, pole_r * 0.9, "metal", segments=12))
        top, down = end, True
    shade = ["cone", "drum", "globe", "dome"][rng.integers(4)]
    size = rng.uniform(0.1, 0.22) * (0.8 if down else 1.0)
    if shade == "globe":
        centre = top + ([0, -size * 0.8, 0] if down else [0, size * 0.8, 0])
        parts.append(ellipsoid(centre, (size, size * rng.uniform(0.8, 1.1), size), "shade"))
    elif shade == "dome":
        profile = [(size * math.cos(a), size * math.sin(a)) for a in np.linspace(0, math.pi / 2, 6)]
        profile[-1] = (0.0, size)  # the apex
        base = top - [0, size * 0.9, 0] if down else top - [0, 0.02, 0]
        parts.append(lathe(profile, "shade", base=base, segments=20))
    else:
        height = rng.uniform(0.6, 1.1) * size
        lower = size
        upper = size * (rng.uniform(0.45, 0.75) if shade == "cone" else 1.0)
        if down:
            parts.append(
                cylinder(top - [0, height, 0], top + [0, 0.01, 0], lower, "shade", radius_b=upper, segments=24)
            )
        else:
            start = top - [0, height * 0.3, 0]
            parts.append(cylinder(start, start + [0, height, 0], lower, "shade", radius_b=upper, segments=24))
    metal = _pick(rng, METALS)
    return parts, {
        "metal": metal,
        "shade": _pick(rng, [(0.92, 0.88, 0.75), WHITE, (0.7, 0.1, 0.1), (0.15, 0.45, 0.3), (0.15, 0.25, 0.6)]),
    }


def rifle(rng: np.random.Generator) -> tuple[list[Part], Colors]:
    """Barrel (+X) + receiver + stock + grip (+ magazine, scope, handguard); lengths and thicknesses vary."""
    receiver_l, receiver_h = rng.uniform(0.25, 0.35), rng.uniform(0.05, 0.08)
    half_w = rng.uniform(0.014, 0.022)
    r0 = -receiver_l / 2
    parts = [box((0, 0, 0), (receiver_l, receiver_h, 2 * half_w), "metal")]
    barrel_end = 0.5
    barrel_r = rng.uniform(0.007, 0.013)
    parts.append(
        cylinder(
            (receiver_l / 2 - 0.01, receiver_h * 0.2, 0),
            (barrel_end, receiver_h * 0.2, 0),
            barrel_r,
            "metal",
            segments=10,
        )
    )
    drop = rng.uniform(0.02, 0.07)
    butt_h = rng.uniform(0.09, 0.14)
    stock = [(r0 + 0.01, receiver_h / 2), (r0 + 0.01, -receiver_h / 2), (-0.5, -drop - butt_h / 2),
             (-0.5, -drop + butt_h / 2)]  # fmt: skip
    parts.append(prism(stock, half_w * 0.9, "stock"))
    grip = box((r0 + 0.07, -receiver_h / 2 - 0.04, 0), (0.035, 0.09, 2 * half_w * 0.9), "stock")
    parts.append(grip.rotated(rotation("z", rng.uniform(10, 25)), (r0 + 0.07, -receiver_h / 2, 0)))
    if rng.random() < 0.7:
        mag_l = rng.uniform(0.06, 0.1)
        mag = box((r0 + receiver_l * 0.65, -receiver_h / 2 - mag_l / 2, 0), (0.04, mag_l + 0.02, half_w * 1.6), "metal")
        parts.append(mag.rotated(rotation("z", rng.uniform(-20, 0)), (r0 + receiver_l * 0.65, -receiver_h / 2, 0)))
    if rng.random() < 0.5:
        scope_r, scope_l = rng.uniform(0.014, 0.024), rng.uniform(0.14, 0.24)
        y = receiver_h / 2 + scope_r + 0.015
        parts.append(
            cylinder((-scope_l / 2, y, 0), (scope_l / 2, y, 0), scope_r, "metal", radius_b=scope_r * 1.2, segments=14)
        )
        for x in (-scope_l / 4, scope_l / 4):
            parts.append(box((x, receiver_h / 2 + 0.008, 0), (0.015, 0.03, 0.012), "metal"))
    if rng.random() < 0.6:
        guard_l = rng.uniform(0.12, 0.22)
        parts.append(
            box(
                (receiver_l / 2 + guard_l / 2 - 0.01, receiver_h * 0.05, 0),
                (guard_l, receiver_h * 0.7, 2 * half_w * 0.95),
                "stock",
            )
        )
    return parts, {"metal": _pick(rng, [(0.06, 0.06, 0.06), (0.25, 0.25, 0.27)]),
                   "stock": _pick(rng, WOODS + [(0.08, 0.08, 0.08), (0.3, 0.33, 0.2)])}  # fmt: skip


FAMILIES: dict[str, Family] = {
    "02691156": airplane,
    "02828884": bench,
    "02933112": cabinet,
    "02958343": car,
    "03001627": chair,
    "03211117": display,
    "03636649": lamp,
    "03691459": loudspeaker,
    "04090263": rifle,
    "04256520": sofa,
    "04379243": table,
    "04401088": telephone,
    "04530566": vessel,
}
