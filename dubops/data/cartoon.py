"""The cartoon video of the synthetic dubbing corpus.

Each clip shows 0-3 characters in front of a wall. What a model must read from
the pixels is drawn on purpose:

* scene type (DeepDubber's dialogue / monologue / narration): how many
  characters there are and whether one of them moves its mouth with the speech;
* gender: hair (long with bangs vs short; pigtails and a bow vs a cowlick for
  children; a bun vs a bald crown with a moustache when elderly), lipstick,
  clothes palette, collar and tie;
* age: head-to-body ratio and big eyes for children, grey or white hair,
  glasses, forehead wrinkles, raised (hunched) shoulders and a cane when elderly;
* emotion: eyebrow angle, eyelid cut, mouth corner curve and width, face tint,
  tears / sweat drops, and the scene's wall colour and lighting.

The talking character's mouth follows the caller's per-frame signal (the speech
RMS envelope); silent mouths stay closed but part briefly now and then, drawn
so their measured track stays uncorrelated with the speech, so lip-sync
correlation singles the talker out. There is no camera shake: every moving
pixel costs h264 noise in the measured mouths. The wall is one flat colour, so
the report can count characters as blobs that differ from the border colour,
and adjacent characters never touch.

Coordinates are frame pixels ``(x, y)``, y down; ``r`` is a slot's adult head
radius and every face feature is placed in units of ``r``. Around head height
nothing reaches further than 1.2 r from a slot's centre, so neighbours' heads
stay at least 0.18 slot widths apart (the report counts heads as column runs).
Frames are uint8 ``(n, size, size, 3)`` RGB; everything is deterministic given
the rng.

This module only draws. The slot layout (:func:`~dubops.speech.mouth.character_boxes`)
and the drawn mouth's size come from :mod:`dubops.speech.mouth`, whose
:func:`~dubops.speech.mouth.measure_mouth_openings` reads the mouths back: the
speech generator measures them at inference and must not import this renderer,
and sharing the geometry keeps drawing and measuring in step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from dubops.data.schema import AGES, EMOTIONS, GENDERS, MAX_PEOPLE
from dubops.speech.mouth import JAW_DROP, MOUTH_CLOSED, Slot, character_boxes

# Flat wall colour per emotion (RGB), its lighting (a multiplier on the
# characters) and the décor mark drawn faintly on the wall.
_WALL: dict[str, tuple[float, float, float]] = {
    "anger": (178, 42, 34),
    "disgust": (122, 132, 40),
    "fear": (24, 62, 42),
    "joy": (250, 196, 78),
    "neutral": (160, 158, 150),
    "sadness": (28, 44, 104),
    "surprise": (188, 118, 226),
}
_LIGHT: dict[str, float] = {
    "anger": 0.97,
    "disgust": 0.92,
    "fear": 0.78,
    "joy": 1.06,
    "neutral": 1.0,
    "sadness": 0.8,
    "surprise": 1.04,
}


@dataclass(frozen=True)
class _Face:
    """Expression parameters of one emotion, in units of ``r`` unless noted."""

    brow: tuple[float, float, float]  # inner end, outer end (+ is down), arch lift
    eye: tuple[float, float, float]  # height factor (0 = happy arcs), pupil share, lid tilt
    mouth: tuple[float, float, float]  # half-width, left and right corner lift (+ = smile)
    tint: tuple[tuple[int, int, int], float] | None  # face tint colour and amount
    mark: str  # "", "tear", "sweat", "vein", "blush", "wrinkle"


# Lid tilt + lowers the inner side of the lid (anger), - the outer side (sadness).
_FACES: dict[str, _Face] = {
    "anger": _Face(
        (0.16, -0.12, 0), (0.75, 0.6, 0.9), (0.33, -0.1, -0.1), ((235, 60, 50), 0.3), "vein"
    ),
    "disgust": _Face(
        (0.12, 0, 0), (0.6, 0.6, 0), (0.3, 0.12, -0.08), ((140, 190, 70), 0.3), "wrinkle"
    ),
    "fear": _Face(
        (-0.2, -0.04, 0.04),
        (1.35, 0.38, -0.3),
        (0.36, -0.07, -0.07),
        ((190, 225, 200), 0.35),
        "sweat",
    ),
    "joy": _Face((-0.06, -0.06, 0.08), (0, 0.6, 0), (0.36, 0.14, 0.14), None, "blush"),
    "neutral": _Face((0, 0, 0), (1, 0.6, 0), (0.3, 0, 0), None, ""),
    "sadness": _Face(
        (-0.16, 0.08, 0), (0.8, 0.6, -0.8), (0.27, -0.12, -0.12), ((150, 170, 220), 0.25), "tear"
    ),
    "surprise": _Face((-0.22, -0.2, 0.1), (1.4, 0.38, 0), (0.2, 0, 0), None, ""),
}

_SKIN = ((255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 140, 100), (168, 116, 84))
_HAIR_YOUNG = ((34, 28, 28), (92, 56, 34), (226, 190, 108), (152, 62, 34))
_HAIR_OLD = ((172, 172, 176), (236, 236, 236), (204, 204, 214))
_CLOTHES = {
    ("female", "adult"): ((222, 80, 142), (160, 70, 192), (232, 120, 92), (60, 172, 172)),
    ("male", "adult"): ((48, 80, 162), (68, 112, 70), (112, 80, 58), (88, 90, 102)),
    ("female", "child"): ((250, 130, 200), (200, 150, 250), (120, 204, 60)),
    ("male", "child"): ((252, 200, 40), (250, 132, 30), (80, 180, 242)),
    ("female", "elderly"): ((150, 120, 164), (176, 96, 110)),
    ("male", "elderly"): ((132, 112, 80), (110, 120, 96)),
}
_LIPSTICK = (250, 128, 160)  # light enough (luma) not to read as mouth interior
_MOUTH_INSIDE = (44, 6, 16)
_EYE_WHITE = (246, 246, 246)
_PUPIL = (28, 24, 36)
_DROP = (130, 196, 255)

# Mouth geometry in units of r: closed-line height and lip width. Its closed
# half-height and jaw drop are MOUTH_CLOSED and JAW_DROP of dubops.speech.mouth,
# which measures the mouths with them.
_MOUTH_Y = 0.38
_LIP = 0.08
# Silent mouths rest at _IDLE_REST and part by up to _IDLE_PEAK about once per
# _IDLE_EVERY frames; the least speech-correlated of _IDLE_TRIES draws is kept.
_IDLE_REST = 0.04
_IDLE_PEAK = 0.25
_IDLE_EVERY = 40
_IDLE_TRIES = 32


@dataclass(frozen=True)
class Character:
    """One character on screen: the labels its drawing carries and whether it talks."""

    gender: str  # "female" | "male"
    age: str  # "child" | "adult" | "elderly"
    emotion: str
    talking: bool


def render_clip(
    characters: list[Character],
    scene_emotion: str,
    mouth_open: np.ndarray,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw one clip.

    Args:
        characters: 0-3 characters, left to right; at most one has ``talking``.
        scene_emotion: emotion of the wall colour and lighting.
        mouth_open: ``(n_frames,)`` in [0, 1] for the talker (ignored when nobody
            talks; it still sets n_frames, and silent mouths are kept uncorrelated with it).
        size: frame width and height in pixels (even, >= 32).
        rng: source of every random choice (colours, décor, idle mouth motion).

    Returns:
        uint8 ``(n_frames, size, size, 3)`` RGB.
    """
    mouth_open = _check_clip_args(characters, scene_emotion, mouth_open, size)
    n = len(mouth_open)
    canvas = _Canvas(size)
    wall, light = _draw_scene(canvas, scene_emotion, rng)
    mouths = []
    for char, box in zip(characters, character_boxes(len(characters), size), strict=True):
        slot = Slot.from_box(box, size)
        mouths.append(_draw_character(canvas, char, slot, wall, light, rng))
    static = canvas.to_uint8()
    signals = [
        np.clip(mouth_open, 0.0, 1.0) if c.talking else _idle_signal(mouth_open, rng)
        for c in characters
    ]
    frames = np.repeat(static[None], n, axis=0)  # (n, size, size, 3)
    for spec, signal in zip(mouths, signals, strict=True):
        (r0, r1, c0, c1), patches = _draw_mouths(static, spec, signal)  # (n, ph, pw, 3)
        frames[:, r0:r1, c0:c1] = patches
    return frames


# ---------------------------------------------------------------- drawing


class _Canvas:
    """A float RGB image with anti-aliased shapes; coordinates are frame pixels.

    Each shape computes its coverage only inside its bounding box, which keeps a
    whole character at a few hundred microseconds.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.image = np.zeros((size, size, 3), dtype=np.float32)
        self.coords = np.arange(size, dtype=np.float32)

    def to_uint8(self) -> np.ndarray:
        return np.clip(self.image + 0.5, 0, 255).astype(np.uint8)

    def fill(self, colour: np.ndarray) -> None:
        self.image[:] = colour

    def _window(
        self, x0: float, y0: float, x1: float, y1: float
    ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """The pixel slice around a bounding box, with its row (h, 1) and column (1, w) coords."""
        side = self.size
        c0, c1 = max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 2, side)
        r0, r1 = max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 2, side)
        sl = (slice(r0, r1), slice(c0, c1))
        return sl, self.coords[r0:r1, None], self.coords[None, c0:c1]

    def _paint(self, sl, alpha: np.ndarray, colour, opacity: float = 1.0) -> None:
        if alpha.size == 0:
            return
        region = self.image[sl]
        region += (opacity * alpha)[..., None] * (np.asarray(colour, np.float32) - region)

    def ellipse(self, cx, cy, rx, ry, colour, opacity=1.0, cut=None) -> None:
        """Filled ellipse; ``cut=(y, slope)`` keeps only the part below that line."""
        sl, ys, xs = self._window(cx - rx, cy - ry, cx + rx, cy + ry)
        alpha = _ellipse_alpha(xs - cx, ys - cy, rx, ry)
        if cut is not None:
            y_cut, slope = cut
            alpha = alpha * np.clip(ys - (y_cut + slope * (xs - cx)) + 0.5, 0.0, 1.0)
        self._paint(sl, alpha, colour, opacity)

    def ring(self, cx, cy, radius, width, colour) -> None:
        ext = radius + width
        sl, ys, xs = self._window(cx - ext, cy - ext, cx + ext, cy + ext)
        dist = np.abs(np.hypot(xs - cx, ys - cy) - radius)
        self._paint(sl, np.clip(width / 2 - dist + 0.5, 0.0, 1.0), colour)

    def box(self, x0, y0, x1, y1, colour, radius=0.0) -> None:
        """Filled rectangle with rounded corners."""
        sl, ys, xs = self._window(x0, y0, x1, y1)
        hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
        qx = np.abs(xs - (x0 + x1) / 2) - hx + radius
        qy = np.abs(ys - (y0 + y1) / 2) - hy + radius
        dist = (
            np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
            + np.minimum(np.maximum(qx, qy), 0)
            - radius
        )
        self._paint(sl, np.clip(0.5 - dist, 0.0, 1.0), colour)

    def line(self, points, width, colour, opacity=1.0) -> None:
        """Polyline with round caps."""
        pts = np.asarray(points, dtype=np.float32)
        half = width / 2
        lo, hi = pts.min(axis=0) - half, pts.max(axis=0) + half
        sl, ys, xs = self._window(lo[0], lo[1], hi[0], hi[1])
        dist = np.full(np.broadcast_shapes(ys.shape, xs.shape), np.inf, dtype=np.float32)
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            dx, dy = bx - ax, by - ay
            t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
            dist = np.minimum(dist, np.hypot(xs - ax - t * dx, ys - ay - t * dy))
        self._paint(sl, np.clip(half - dist + 0.5, 0.0, 1.0), colour, opacity)

    def polygon(self, points, colour, opacity=1.0) -> None:
        """Filled convex polygon, points in clockwise order on screen (y down)."""
        pts = np.asarray(points, dtype=np.float32)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        sl, ys, xs = self._window(lo[0], lo[1], hi[0], hi[1])
        dist = np.full(np.broadcast_shapes(ys.shape, xs.shape), -np.inf, dtype=np.float32)
        for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0), strict=True):
            nx, ny = by - ay, ax - bx  # outward normal for clockwise order
            norm = max(float(np.hypot(nx, ny)), 1e-6)
            dist = np.maximum(dist, ((xs - ax) * nx + (ys - ay) * ny) / norm)
        self._paint(sl, np.clip(0.5 - dist, 0.0, 1.0), colour, opacity)


def _ellipse_alpha(dx: np.ndarray, dy: np.ndarray, rx, ry) -> np.ndarray:
    """Coverage of an ellipse from a first-order signed distance (broadcasts over rx, ry)."""
    rx = np.maximum(rx, 1e-3)
    ry = np.maximum(ry, 1e-3)
    u, v = dx / rx, dy / ry
    q = np.sqrt(u * u + v * v)
    grad = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    dist = (q - 1.0) * q / np.maximum(grad, 1e-6)
    return np.clip(0.5 - dist, 0.0, 1.0)


def _draw_scene(
    canvas: _Canvas, emotion: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flat wall + faint décor; returns the wall colour and the characters' RGB light."""
    size = canvas.size
    wall = np.clip(np.array(_WALL[emotion]) + rng.normal(0, 7, 3), 0, 255)
    canvas.fill(wall)
    # Décor stays faint (a few % of the wall) so the border colour is one blob-free background.
    faint = wall * (0.9 if wall.mean() > 60 else 1.25)
    x0 = rng.uniform(0.05, 0.7) * size
    if emotion == "joy":
        canvas.ellipse(
            x0 + 0.06 * size, 0.14 * size, 0.07 * size, 0.07 * size, faint * 1.08, opacity=0.6
        )
    elif emotion == "sadness":
        for k in range(6):
            x = x0 + 0.04 * k * size
            canvas.line([(x, 0.05 * size), (x - 0.02 * size, 0.25 * size)], 1.0, faint, opacity=0.5)
    elif emotion == "fear":
        canvas.ellipse(x0 + 0.06 * size, 0.12 * size, 0.06 * size, 0.06 * size, faint, opacity=0.6)
    elif emotion == "anger":
        zig = [(0, 0.04), (0.06, 0.14), (0.02, 0.15), (0.08, 0.27)]
        canvas.line([(x0 + x * size, y * size) for x, y in zig], 1.5, faint, opacity=0.6)
    elif emotion == "surprise":
        for x, y in rng.uniform(0.03, 0.97, (8, 2)) * size * np.array([1.0, 0.3]):
            canvas.ellipse(x, y, 1.0, 1.0, faint * 1.1, opacity=0.6)
    elif emotion == "disgust":
        for x, y in rng.uniform(0.05, 0.95, (3, 2)) * size * np.array([1.0, 0.25]):
            canvas.ellipse(x, y, 3.0, 2.0, faint, opacity=0.5)
    canvas.box(-3, 0.86 * size, size + 3, size + 3, wall * 0.93)  # floor line, under everyone
    tint = 0.82 + 0.18 * wall / max(float(wall.max()), 1.0)
    return wall, (_LIGHT[emotion] * rng.uniform(0.97, 1.03) * tint).astype(np.float32)


@dataclass(frozen=True)
class _MouthSpec:
    """Everything needed to redraw one mouth per frame."""

    cx: float
    cy: float  # the closed mouth line at the centre
    half_width: float
    curve_left: float  # corner lift in pixels
    curve_right: float
    closed: float  # closed half-height in pixels
    jaw: float  # full jaw drop in pixels
    lip: float
    lip_colour: np.ndarray
    inside_colour: np.ndarray


@dataclass(frozen=True)
class _Look:
    """One character's lit colours, drawn once from the rng."""

    light: np.ndarray  # (3,) RGB multiplier of the scene
    skin: np.ndarray
    face: np.ndarray  # skin after the emotion's tint
    hair: np.ndarray
    clothes: np.ndarray

    def lit(self, colour) -> np.ndarray:
        return _lit(colour, self.light)


def _lit(colour, light: np.ndarray) -> np.ndarray:
    """A colour under the scene's light (RGB multiplier)."""
    return np.clip(np.asarray(colour, np.float32) * light, 0, 255)


def _draw_character(
    canvas: _Canvas,
    char: Character,
    slot: Slot,
    wall: np.ndarray,
    light: np.ndarray,
    rng: np.random.Generator,
) -> _MouthSpec:
    """Draw the static parts of one character; return its mouth for per-frame drawing."""
    look = _pick_look(char, wall, light, rng)
    _draw_body(canvas, char, slot, look)
    _draw_head(canvas, char, slot, look)
    _draw_eyes(canvas, char, slot, look)
    _draw_marks(canvas, char, slot, look)
    face, r = _FACES[char.emotion], slot.r
    scale = 0.85 if char.age == "child" else 1.0
    lipstick = char.gender == "female" and char.age != "child"
    return _MouthSpec(
        cx=slot.cx,
        cy=slot.cy + _MOUTH_Y * r,
        half_width=face.mouth[0] * r * scale,
        curve_left=face.mouth[1] * r * scale,
        curve_right=face.mouth[2] * r * scale,
        closed=MOUTH_CLOSED * r,
        jaw=JAW_DROP * r * scale,
        lip=_LIP * r,
        lip_colour=look.lit(_LIPSTICK) if lipstick else look.face * 0.82,
        inside_colour=look.lit(_MOUTH_INSIDE),
    )


def _pick_look(
    char: Character, wall: np.ndarray, light: np.ndarray, rng: np.random.Generator
) -> _Look:
    """Skin, hair and clothes colours; clothes are chosen to stand out from the wall.

    The report counts characters as connected blobs that differ from the wall,
    so both the clothes and their anti-aliased blend with the chin must differ
    from it; otherwise a head and its body come apart into two blobs.
    """
    skin = _lit(_SKIN[rng.integers(len(_SKIN))], light)
    hair_pool = _HAIR_OLD if char.age == "elderly" else _HAIR_YOUNG
    hair = _lit(hair_pool[rng.integers(len(hair_pool))], light)
    tint = _FACES[char.emotion].tint
    face = skin if tint is None else skin + tint[1] * (_lit(tint[0], light) - skin)
    pool = _CLOTHES[(char.gender, char.age)]
    best, best_score = _lit(pool[0], light), -1.0
    for k in rng.permutation(len(pool)):
        colour = _lit(pool[k], light)
        score = min(
            float(np.abs(colour - wall).sum()) / 120,
            float(np.abs((colour + face) / 2 - wall).sum()) / 90,
        )
        if score > best_score:
            best, best_score = colour, score
        if score >= 1.0:
            break
    return _Look(light, skin, face, hair, best)


def _draw_body(canvas: _Canvas, char: Character, slot: Slot, look: _Look) -> None:
    """Long hair behind, neck, torso and what is worn on it; the cane of the elderly."""
    cx, cy, r, size = slot.cx, slot.cy, slot.r, canvas.size
    female, child, old = char.gender == "female", char.age == "child", char.age == "elderly"
    if female and not child:  # long hair falls behind the head onto the shoulders
        drop = 0.35 * r if old else 1.5 * r
        canvas.box(cx - 1.1 * r, cy - 0.6 * r, cx + 1.1 * r, cy + drop, look.hair, radius=0.5 * r)
        canvas.ellipse(cx, cy - 0.15 * r, 1.1 * r, 1.05 * r, look.hair)
    # Shoulder width by gender and age; the elderly hunch (shoulders high and round).
    if child:
        half, top, rad = 0.75 * r, cy + 1.2 * r, 0.35 * r
    elif old:
        half, top, rad = (1.0 if female else 1.15) * r, cy + 0.9 * r, 0.75 * r
    else:
        half, top, rad = (1.02 if female else 1.28) * r, cy + 1.15 * r, 0.4 * r
    canvas.box(cx - 0.2 * r, cy + 0.6 * r, cx + 0.2 * r, top + 0.3 * r, look.skin * 0.88)
    canvas.box(cx - half, top, cx + half, size + 4, look.clothes, radius=rad)
    if child:  # a stripe across the T-shirt
        canvas.box(cx - half, top + 0.7 * r, cx + half, top + 0.95 * r, look.clothes * 0.6)
    elif old:  # cardigan buttons, and a cane held beside the body (touching it)
        for k in range(3):
            y = top + (0.5 + 0.45 * k) * r
            canvas.ellipse(cx, y, 0.07 * r, 0.07 * r, look.clothes * 0.5)
        x, wood = cx + half + 0.12 * r, look.lit((120, 78, 40))
        hook = [(x, size + 2), (x, top + 0.7 * r), (x + 0.12 * r, top + 0.45 * r)]
        canvas.line([*hook, (x + 0.3 * r, top + 0.55 * r)], 0.16 * r, wood)
        canvas.ellipse(x, top + 1.1 * r, 0.16 * r, 0.14 * r, look.skin)
    elif female:  # V-neck and a necklace
        v = [(cx - 0.4 * r, top - 0.1), (cx + 0.4 * r, top - 0.1), (cx, top + 0.7 * r)]
        canvas.polygon(v, look.skin * 0.95)
        chain = [(cx - 0.38 * r, top), (cx, top + 0.6 * r), (cx + 0.38 * r, top)]
        canvas.line(chain, 0.1 * r, look.lit((240, 220, 120)))
    else:  # white collar and a dark tie
        white = look.lit((245, 245, 245))
        canvas.polygon(
            [(cx - 0.45 * r, top), (cx, top + 0.4 * r), (cx - 0.2 * r, top + 0.55 * r)], white
        )
        canvas.polygon(
            [(cx + 0.45 * r, top), (cx + 0.2 * r, top + 0.55 * r), (cx, top + 0.4 * r)], white
        )
        tie = [(-0.12, 0.3), (0.12, 0.3), (0.18, 1.6), (-0.18, 1.6)]
        canvas.polygon([(cx + dx * r, top + dy * r) for dx, dy in tie], look.lit((40, 36, 60)))


def _draw_head(canvas: _Canvas, char: Character, slot: Slot, look: _Look) -> None:
    """Face and hair: bangs for women and children, short hair for men, a bald crown
    with a white fringe and a moustache for old men, a bun for old women."""
    cx, cy, r = slot.cx, slot.cy, slot.r
    female, child, old = char.gender == "female", char.age == "child", char.age == "elderly"
    # Children: a big round head (on a narrow body); adults an oval one.
    hrx, hry = (0.95 * r, 1.05 * r) if child else (0.9 * r, 1.1 * r)
    if child and female:  # pigtails behind the head
        for side in (-1, 1):
            canvas.ellipse(cx + side * 0.95 * r, cy - 0.2 * r, 0.25 * r, 0.42 * r, look.hair)
    bald = old and not female
    hairline = None  # the face is drawn below it, over a hair cap covering the head
    if not bald:
        canvas.ellipse(cx, cy, hrx * 1.05, hry * 1.05, look.hair)
        hairline = (cy + (-0.62 if female or child else -0.72) * r, 0.0)
    canvas.ellipse(cx, cy, hrx, hry, look.skin, cut=hairline)
    if not female and not child:  # a squarer jaw
        canvas.box(cx - 0.82 * r, cy - 0.1 * r, cx + 0.82 * r, cy + r, look.skin, radius=0.45 * r)
    tint = _FACES[char.emotion].tint
    if tint is not None:
        canvas.ellipse(cx, cy, hrx, hry, look.lit(tint[0]), opacity=tint[1], cut=hairline)
    if bald:
        for side in (-1, 1):
            canvas.ellipse(cx + side * 0.86 * r, cy - 0.3 * r, 0.2 * r, 0.35 * r, look.hair)
            canvas.ellipse(cx + side * 0.14 * r, cy + 0.24 * r, 0.18 * r, 0.07 * r, look.hair)
    elif old:  # a bun on top
        canvas.ellipse(cx, cy - 1.15 * r, 0.35 * r, 0.28 * r, look.hair)
    elif child and female:  # a bow in the hair
        for side in (-1, 1):
            x = cx + (0.5 + side * 0.14) * r
            canvas.ellipse(x, cy - 0.95 * r, 0.15 * r, 0.11 * r, look.lit((236, 60, 130)))
    elif child:  # a cowlick
        tuft = [(cx, cy - 1.05 * r), (cx + 0.15 * r, cy - 1.35 * r), (cx + 0.35 * r, cy - 1.3 * r)]
        canvas.line(tuft, 0.14 * r, look.hair)
    elif not female:  # sideburns
        for side in (-1, 1):
            x = cx + side * 0.84 * r
            canvas.box(x - 0.08 * r, cy - 0.7 * r, x + 0.08 * r, cy - 0.15 * r, look.hair)
    # Nose: a shade, never dark enough to read as mouth.
    canvas.ellipse(cx, cy + 0.13 * r, 0.08 * r, 0.06 * r, look.skin * 0.8)


def _draw_marks(canvas: _Canvas, char: Character, slot: Slot, look: _Look) -> None:
    """Cartoon marks: wrinkles of age, blush, tear, sweat drop, anger vein, nose wrinkles."""
    cx, cy, r = slot.cx, slot.cy, slot.r
    mark = _FACES[char.emotion].mark
    if char.age == "elderly":  # forehead wrinkles
        for k in range(2):
            y = cy - (0.78 - 0.1 * k) * r
            line = [(cx - 0.3 * r, y), (cx, y - 0.04 * r), (cx + 0.3 * r, y)]
            canvas.line(line, 0.05 * r, look.skin * 0.7)
    if mark == "blush" or char.age == "child":
        pink = look.lit((245, 120, 140))
        for side in (-1, 1):
            x = cx + side * 0.52 * r
            canvas.ellipse(x, cy + 0.2 * r, 0.16 * r, 0.1 * r, pink, opacity=0.55)
    if mark == "tear":
        canvas.ellipse(cx - 0.42 * r, cy + 0.2 * r, 0.07 * r, 0.12 * r, look.lit(_DROP))
    elif mark == "sweat":
        canvas.ellipse(cx + 0.78 * r, cy - 0.5 * r, 0.09 * r, 0.15 * r, look.lit(_DROP))
    elif mark == "vein":
        vx, vy, d = cx + 0.5 * r, cy - 0.68 * r, 0.12 * r
        red = look.lit((200, 20, 30))
        canvas.line([(vx - d, vy - d), (vx + d, vy + d)], 0.07 * r, red)
        canvas.line([(vx - d, vy + d), (vx + d, vy - d)], 0.07 * r, red)
    elif mark == "wrinkle":  # nose wrinkles of disgust
        for side in (-1, 1):
            line = [(cx + side * 0.06 * r, cy), (cx + side * 0.16 * r, cy + 0.06 * r)]
            canvas.line(line, 0.05 * r, look.skin * 0.72)


def _draw_eyes(canvas: _Canvas, char: Character, slot: Slot, look: _Look) -> None:
    """Eyes, lids and brows: where most of the expression is."""
    face = _FACES[char.emotion]
    eye_open, pupil, lid_tilt = face.eye
    cx, cy, r = slot.cx, slot.cy, slot.r
    child, old, female = char.age == "child", char.age == "elderly", char.gender == "female"
    ey = cy - 0.1 * r
    erx, ery = (0.21 * r, 0.25 * r) if child else (0.16 * r, 0.19 * r)
    brow_colour = look.lit((110, 108, 112)) if old else look.hair * 0.75
    brow_width = (0.1 if female or child else 0.15) * r
    for side in (-1, 1):  # -1 = the character's right, drawn on the left
        ex = cx + side * 0.38 * r
        if eye_open == 0:  # joy: closed happy arcs
            arc = [
                (ex - erx, ey + 0.05 * r),
                (ex - 0.5 * erx, ey - 0.1 * r),
                (ex + 0.5 * erx, ey - 0.1 * r),
                (ex + erx, ey + 0.05 * r),
            ]
            canvas.line(arc, 0.09 * r, look.lit(_PUPIL))
        else:
            h = ery * eye_open
            # The lid cut tilts with the emotion: + lowers the inner side (anger).
            slope = -side * lid_tilt * 0.5
            cut = (ey - h + abs(lid_tilt) * 0.35 * h, slope) if lid_tilt else None
            canvas.ellipse(ex, ey, erx, h, look.lit(_EYE_WHITE), cut=cut)
            pr = min(erx, h) * pupil
            canvas.ellipse(ex, ey + 0.1 * h, pr, pr, look.lit(_PUPIL), cut=cut)
            if female and not child:  # lashes at the outer corner
                canvas.line(
                    [
                        (ex + side * erx, ey - 0.3 * h),
                        (ex + side * (erx + 0.12 * r), ey - 0.55 * h),
                    ],
                    0.06 * r,
                    look.lit(_PUPIL),
                )
        if old:  # glasses
            canvas.ring(ex, ey, 0.27 * r, 0.06 * r, look.lit((70, 56, 40)))
        # Brows: the inner end is the one near the nose. Disgust lowers one brow only.
        inner, outer, arch = face.brow
        if char.emotion == "disgust" and side == 1:
            inner, outer = -0.12, -0.1
        by = cy - 0.38 * r
        xi, xo = ex - side * 0.2 * r, ex + side * 0.22 * r
        mid = ((xi + xo) / 2, by + ((inner + outer) / 2 - arch - 0.03) * r)
        canvas.line([(xi, by + inner * r), mid, (xo, by + outer * r)], brow_width, brow_colour)
    if old:
        canvas.line([(cx - 0.11 * r, ey), (cx + 0.11 * r, ey)], 0.06 * r, look.lit((70, 56, 40)))


def _column_alpha(ys, centre, dx, half_width, half_height) -> np.ndarray:
    """Coverage of an ellipse integrated exactly along each pixel column.

    A column's summed coverage is then exactly the ellipse's height there, so a
    mouth's dark area is linear in its opening even when it is under a pixel
    thin (a closed mouth), which keeps the measured track linear too.
    """
    u = np.clip(dx / half_width, -1.0, 1.0)
    h = half_height * np.sqrt(1.0 - u * u)  # (n, 1, pw) half-height of each column
    top = np.maximum(ys - 0.5, centre - h)
    bottom = np.minimum(ys + 0.5, centre + h)
    return np.clip(bottom - top, 0.0, 1.0)


def _draw_mouths(
    static: np.ndarray, spec: _MouthSpec, opening: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Per-frame mouths over the static canvas: lips then a dark interior whose
    jaw drops with ``opening`` (area linear in it, so the measurement is too).

    Returns:
        ``((r0, r1, c0, c1) canvas rows/cols, patches (n, ph, pw, 3) uint8)``.
    """
    a, lip = spec.half_width, spec.lip
    curve = max(abs(spec.curve_left), abs(spec.curve_right))
    x0, x1 = spec.cx - a - lip - 1, spec.cx + a + lip + 1
    y0 = spec.cy - curve - spec.closed - lip - 1
    y1 = spec.cy + spec.closed + spec.jaw + lip + 1
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, static.shape[0])
    c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, static.shape[1])
    ys = np.arange(r0, r1, dtype=np.float32)[None, :, None]  # (1, ph, 1)
    xs = np.arange(c0, c1, dtype=np.float32)[None, None, :]  # (1, 1, pw)
    dx = xs - spec.cx
    u = dx / a
    lift = np.where(u < 0, spec.curve_left, spec.curve_right) * np.minimum(u * u, 1.6)
    opening = np.asarray(opening, dtype=np.float32)[:, None, None]  # (n, 1, 1)
    centre = spec.cy + opening * spec.jaw / 2 - lift  # (n, 1, pw)
    half_h = spec.closed + opening * spec.jaw / 2  # (n, 1, 1)
    lips = _column_alpha(ys, centre, dx, a + lip, half_h + lip)[..., None]  # (n, ph, pw, 1)
    inside = _column_alpha(ys, centre, dx, a, half_h)[..., None]
    patch = static[r0:r1, c0:c1].astype(np.float32)[None]  # (1, ph, pw, 3)
    patch = patch + lips * (spec.lip_colour - patch)
    patch = patch + inside * (spec.inside_colour - patch)
    return (r0, r1, c0, c1), np.clip(patch + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- signals


def _idle_signal(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A silent mouth: closed, parting slightly now and then for a few frames (a breath).

    Between movements the mouth is perfectly still, so the h264 encoder skips
    its blocks and the decoded mouth carries no codec noise. Each movement
    starts and ends with a whole step: the tail of a smooth one falls below the
    quantiser and the decoder keeps a stale half-open mouth (measured: a smooth
    idle walk read back at |r| up to 0.5 with the speech). Independent signals
    still correlate by chance over a short clip, so of several candidate draws
    the one least correlated with the speech is kept.
    """
    n = len(speech)
    best, best_r = None, np.inf
    for _ in range(_IDLE_TRIES):
        signal = np.full(n, _IDLE_REST, dtype=np.float64)
        for _ in range(1 + rng.poisson(n / _IDLE_EVERY)):
            length = int(rng.integers(4, 11))
            start = int(rng.integers(-length // 2, n))
            signal[max(start, 0) : max(start + length, 0)] += rng.uniform(0.5, 1.0) * _IDLE_PEAK
        r = _abs_corr(signal, speech)
        if r < best_r:
            best, best_r = signal, r
    return best.astype(np.float32)


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a @ a) * (b @ b)))
    return abs(float(a @ b)) / denom if denom > 1e-12 else 0.0


def _check_clip_args(
    characters: list[Character], scene_emotion: str, mouth_open: np.ndarray, size: int
) -> np.ndarray:
    if len(characters) > MAX_PEOPLE:
        raise ValueError(f"at most {MAX_PEOPLE} characters, got {len(characters)}")
    if sum(c.talking for c in characters) > 1:
        raise ValueError("at most one character talks in a clip")
    for c in characters:
        if c.gender not in GENDERS or c.age not in AGES or c.emotion not in EMOTIONS:
            raise ValueError(f"unknown character labels {c}")
    if scene_emotion not in EMOTIONS:
        raise ValueError(f"unknown scene emotion {scene_emotion!r}; expected one of {EMOTIONS}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be even and >= 32, got {size}")
    mouth_open = np.asarray(mouth_open, dtype=np.float64)
    if mouth_open.ndim != 1 or len(mouth_open) == 0:
        raise ValueError(
            f"mouth_open must be (n_frames,) with n_frames >= 1, got {mouth_open.shape}"
        )
    return mouth_open
