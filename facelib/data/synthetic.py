"""Procedural synthetic identities: the embedded default data (real faces can't ship).

An identity is a fixed :class:`FaceParams` (face shape, skin tone, eyes, brows, nose,
mouth, hair, glasses, beard, ears, a mole). Every photo of it re-draws those features
under fresh nuisance variation: pose (roll, translation, scale, yaw as a horizontal
shift and squash of the features), expression (smile, open mouth, brow raise, eye
openness), lighting (directional gradient, brightness, colour temperature), clothing
colour and background (colour, gradient, stripes or blobs). The nuisance variation is
strong enough that a pixel-cosine nearest neighbour does poorly, while the identity
parameters stay distinctive, so a learned embedding has something to learn.

Faces are drawn with PIL ``ImageDraw`` at twice the target size (every shape is a
polygon, so rotation is exact) and box-downsampled for antialiasing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facelib.commands import SynthConfig
from facelib.data.distortions import KINDS, distort, image_rng, save_jpeg
from facelib.data.folders import DISTORTION_DIR, DataError
from facelib.io import write_json

__all__ = ["FaceParams", "sample_identity", "render_face", "make_dataset", "FORMAT_VERSION"]

FORMAT_VERSION = 1
HAIR_STYLES = ("bald", "short", "long", "bob", "spiky", "side_part", "afro", "bun")
BEARDS = ("none", "stubble", "moustache", "goatee", "full")
GLASSES = ("none", "round", "square")

_HAIR_COLOURS = np.array(
    [
        (25, 20, 18), (55, 35, 22), (95, 60, 35), (140, 95, 55), (200, 160, 95),
        (225, 200, 140), (150, 55, 25), (120, 120, 120), (215, 215, 210), (70, 45, 60),
    ],
    dtype=np.float64,
)
_SKIN_TONES = np.array(
    [(250, 220, 195), (235, 195, 160), (215, 170, 130), (190, 140, 100), (150, 100, 65), (105, 70, 45), (75, 50, 35)],
    dtype=np.float64,
)
_IRIS = np.array([(60, 40, 25), (110, 75, 40), (70, 110, 160), (80, 120, 80), (40, 40, 45), (120, 120, 140)], float)


@dataclass(frozen=True)
class FaceParams:
    """The fixed appearance of one identity. Lengths are fractions of the image side."""

    face_w: float  # half-width of the face
    face_h: float  # half-height of the face
    squareness: float  # superellipse exponent: 2 = oval, ~3.5 = square
    jaw_taper: float  # narrowing of the lower face (0 = none)
    skin: tuple[int, int, int]
    ear_size: float
    eye_y: float  # eye line, relative to face centre (negative = up), in units of face_h
    eye_spacing: float  # half distance between eye centres, units of face_w
    eye_w: float
    eye_h: float  # eye height relative to eye width
    eye_slant: float  # radians
    iris: tuple[int, int, int]
    brow_shape: int  # 0 straight, 1 arched, 2 angled
    brow_thickness: float
    brow_gap: float  # above the eye, units of face_h
    brow_tilt: float
    nose_len: float  # units of face_h
    nose_w: float  # units of face_w
    nose_style: int  # 0 line, 1 triangle, 2 nostrils
    mouth_y: float  # units of face_h
    mouth_w: float  # units of face_w
    lip_thickness: float
    lip_colour: tuple[int, int, int]
    hair_style: str
    hair_colour: tuple[int, int, int]
    hairline: float  # units of face_h above centre
    hair_volume: float
    part_side: int  # -1 or 1
    beard: str
    glasses: str
    glasses_colour: tuple[int, int, int]
    mole: tuple[float, float] | None  # position in face units, or None
    cheek_blush: float

    def to_dict(self) -> dict:
        return asdict(self)


def _tone(palette: np.ndarray, rng: np.random.Generator, jitter: float) -> tuple[int, int, int]:
    t = rng.uniform(0, len(palette) - 1)
    i = int(t)
    c = palette[i] * (1 - (t - i)) + palette[min(i + 1, len(palette) - 1)] * (t - i)
    c = c + rng.normal(0, jitter, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def sample_identity(rng: np.random.Generator) -> FaceParams:
    """Draw one identity's fixed face parameters."""
    skin = _tone(_SKIN_TONES, rng, 8)
    hair_base = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))]
    hair = tuple(int(v) for v in np.clip(hair_base + rng.normal(0, 12, 3), 0, 255))
    lip = tuple(int(v) for v in np.clip(np.array(skin) * rng.uniform(0.6, 0.85) + np.array([40, -5, -5]), 0, 255))
    glasses = GLASSES[rng.choice(3, p=[0.65, 0.2, 0.15])]
    return FaceParams(
        face_w=rng.uniform(0.19, 0.26),
        face_h=rng.uniform(0.26, 0.34),
        squareness=rng.uniform(2.0, 3.6),
        jaw_taper=rng.uniform(0.0, 0.35),
        skin=skin,
        ear_size=rng.uniform(0.7, 1.3),
        eye_y=rng.uniform(-0.25, -0.05),
        eye_spacing=rng.uniform(0.33, 0.5),
        eye_w=rng.uniform(0.045, 0.07),
        eye_h=rng.uniform(0.35, 0.7),
        eye_slant=rng.uniform(-0.2, 0.2),
        iris=tuple(int(v) for v in _IRIS[rng.integers(len(_IRIS))]),
        brow_shape=int(rng.integers(3)),
        brow_thickness=rng.uniform(0.008, 0.022),
        brow_gap=rng.uniform(0.1, 0.2),
        brow_tilt=rng.uniform(-0.25, 0.25),
        nose_len=rng.uniform(0.2, 0.38),
        nose_w=rng.uniform(0.12, 0.3),
        nose_style=int(rng.integers(3)),
        mouth_y=rng.uniform(0.4, 0.58),
        mouth_w=rng.uniform(0.25, 0.45),
        lip_thickness=rng.uniform(0.008, 0.022),
        lip_colour=lip,
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        hair_colour=hair,
        hairline=rng.uniform(0.45, 0.8),
        hair_volume=rng.uniform(0.02, 0.07),
        part_side=int(rng.choice([-1, 1])),
        beard=BEARDS[rng.choice(len(BEARDS), p=[0.5, 0.12, 0.14, 0.1, 0.14])],
        glasses=glasses,
        glasses_colour=tuple(int(v) for v in rng.integers(0, 160, 3)),
        mole=(float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.1, 0.5))) if rng.random() < 0.3 else None,
        cheek_blush=rng.uniform(0.0, 0.25),
    )


# ----------------------------------------------------------------------------- drawing


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28, a0: float = 0.0, a1: float = 2 * np.pi):
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * np.pi - 1e-9)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(x * (1 - t) + y * t, 0, 255)) for x, y in zip(a, b))


class _Canvas:
    """Draws polygons given in face coordinates (origin at the face centre, +y down)."""

    def __init__(self, img: Image.Image, centre: tuple[float, float], scale: float, roll: float, yaw: float):
        self.draw = ImageDraw.Draw(img)
        self.size = img.size[0]
        self.cx, self.cy = centre
        self.s = scale * self.size
        self.c, self.sn = np.cos(roll), np.sin(roll)
        self.yaw = yaw

    def pts(self, p: np.ndarray, depth: float = 1.0) -> list[tuple[float, float]]:
        """Map face coordinates to pixels; ``depth`` scales the yaw shift (features in front move more)."""
        p = np.asarray(p, dtype=np.float64)
        x = p[:, 0] * (1 - 0.25 * abs(self.yaw)) + self.yaw * 0.12 * depth
        y = p[:, 1]
        X = self.cx + self.s * (self.c * x - self.sn * y)
        Y = self.cy + self.s * (self.sn * x + self.c * y)
        return list(zip(X.tolist(), Y.tolist()))

    def poly(self, p, fill=None, outline=None, width: int = 1, depth: float = 1.0) -> None:
        self.draw.polygon(self.pts(p, depth), fill=fill, outline=outline, width=width)

    def line(self, p, fill, width: float, depth: float = 1.0) -> None:
        self.draw.line(self.pts(p, depth), fill=fill, width=max(1, int(round(width * self.s))), joint="curve")


def _face_outline(fp: FaceParams, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / fp.squareness
    x = fp.face_w * np.sign(c) * np.abs(c) ** e
    y = fp.face_h * np.sign(s) * np.abs(s) ** e
    x = x * (1 - fp.jaw_taper * np.clip(s, 0, None) ** 2)
    return np.stack([x, y], 1)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A per-photo background, [size, size, 3] float."""
    c1 = rng.uniform(0, 255, 3)
    c2 = np.clip(c1 + rng.normal(0, 70, 3), 0, 255)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ang = rng.uniform(0, 2 * np.pi)
    t = np.clip((np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
    bg = c1 * (1 - t) + c2 * t
    kind = rng.integers(4)
    if kind == 1:  # stripes
        period = rng.uniform(0.08, 0.3)
        a2 = rng.uniform(0, np.pi)
        phase = (np.cos(a2) * xx + np.sin(a2) * yy) / period
        bg = bg + (rng.uniform(15, 50) * np.sign(np.sin(2 * np.pi * phase)))[..., None]
    elif kind == 2:  # blobs
        for _ in range(int(rng.integers(2, 6))):
            bx, by, br = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            m = (((xx - bx) ** 2 + (yy - by) ** 2) < br * br)[..., None]
            bg = np.where(m, rng.uniform(0, 255, 3), bg)
    elif kind == 3:  # rectangles (an "indoor scene")
        for _ in range(int(rng.integers(2, 5))):
            x0, y0 = rng.uniform(0, 0.8, 2)
            w, h = rng.uniform(0.1, 0.5, 2)
            m = ((xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h))[..., None]
            bg = np.where(m, rng.uniform(0, 255, 3), bg)
    return bg


def render_face(params: FaceParams, rng: np.random.Generator, image_size: int = 64) -> Image.Image:
    """Draw one photo of the identity ``params`` with random pose, expression, lighting and background."""
    fp = params
    S = 2 * image_size
    img = Image.fromarray(np.clip(_background(S, rng), 0, 255).astype(np.uint8), mode="RGB")

    # pose
    roll = rng.normal(0, 0.1)
    yaw = float(np.clip(rng.normal(0, 0.35), -0.8, 0.8))
    scale = rng.uniform(0.85, 1.15)
    centre = (S * (0.5 + rng.normal(0, 0.05)), S * (0.47 + rng.normal(0, 0.04)))
    cv = _Canvas(img, centre, scale, roll, yaw)
    # expression
    smile = rng.uniform(-0.3, 1.0)
    mouth_open = max(0.0, rng.uniform(-0.6, 1.0))
    brow_raise = rng.uniform(-0.5, 1.0)
    eye_open = rng.uniform(0.35, 1.15)

    skin = fp.skin
    dark_skin = _mix(skin, (40, 20, 10), 0.35)
    hair = fp.hair_colour
    fw, fh = fp.face_w, fp.face_h

    # clothing (varies per photo) and neck
    cloth = tuple(int(v) for v in rng.integers(0, 256, 3))
    cv.poly(_ellipse(0, fh + 0.3, fw * 2.6, 0.24, n=32), fill=cloth, depth=0.2)
    cv.poly(np.array([[-fw * 0.45, 0], [fw * 0.45, 0], [fw * 0.5, fh + 0.1], [-fw * 0.5, fh + 0.1]]),
            fill=dark_skin, depth=0.3)

    # hair behind the head
    vol = fp.hair_volume
    if fp.hair_style in ("long", "bob"):
        bottom = fh * (1.5 if fp.hair_style == "long" else 0.55)
        back = np.concatenate([_ellipse(0, -0.1 * fh, fw + vol, fh + vol, n=20, a0=np.pi, a1=2 * np.pi),
                               np.array([[fw + vol, bottom], [-(fw + vol), bottom]])])
        cv.poly(back, fill=hair, depth=0.3)
    elif fp.hair_style == "afro":
        cv.poly(_ellipse(0, -0.35 * fh, fw + 2.2 * vol + 0.03, fh * 0.85 + 2 * vol, n=32), fill=hair, depth=0.3)
    elif fp.hair_style == "bun":
        cv.poly(_ellipse(0, -fh - 0.03, 0.05 + vol * 0.6, 0.045 + vol * 0.5, n=20), fill=hair, depth=0.3)

    # ears: the one on the side turned away shrinks
    for side in (-1, 1):
        ew = 0.03 * fp.ear_size * (1 - 0.6 * max(0.0, side * yaw))
        cv.poly(_ellipse(side * fw * 0.98, -0.02, ew, 0.05 * fp.ear_size, n=16), fill=dark_skin, depth=0.4)

    # face
    cv.poly(_face_outline(fp), fill=skin, depth=0.6)
    if fp.cheek_blush > 0.05:
        blush = _mix(skin, (220, 90, 90), fp.cheek_blush)
        for side in (-1, 1):
            cv.poly(_ellipse(side * fw * 0.55, 0.25 * fh, fw * 0.2, fh * 0.1, n=14), fill=blush, depth=0.9)

    # beard
    if fp.beard in ("full", "stubble"):
        colour = hair if fp.beard == "full" else _mix(skin, hair, 0.45)
        out = _face_outline(fp, 64)
        lower = out[out[:, 1] > 0.2 * fh]
        lower = lower[np.argsort(np.arctan2(lower[:, 1], lower[:, 0]))]
        cv.poly(np.concatenate([lower, [[-fw * 0.6, 0.2 * fh], [fw * 0.6, 0.2 * fh]]]), fill=colour, depth=0.8)
    if fp.beard in ("goatee",):
        cv.poly(_ellipse(0, fh * 0.82, fw * 0.25, fh * 0.18, n=16), fill=hair, depth=0.9)
    if fp.beard in ("moustache", "full", "goatee"):
        my = fp.mouth_y * fh - 0.025
        cv.poly(np.array([[-fw * fp.mouth_w * 1.1, my + 0.012], [0, my - 0.018], [fw * fp.mouth_w * 1.1, my + 0.012],
                          [0, my + 0.004]]), fill=hair, depth=1.0)

    # eyes
    ey = fp.eye_y * fh
    for side in (-1, 1):
        ex = side * fp.eye_spacing * fw
        ew = fp.eye_w
        eh = ew * fp.eye_h * eye_open
        shape = _ellipse(0, 0, ew, max(eh, 0.004), n=18)
        c, s = np.cos(side * fp.eye_slant), np.sin(side * fp.eye_slant)
        rot = np.array([[c, -s], [s, c]])
        cv.poly(shape @ rot.T + [ex, ey], fill=(245, 245, 240), outline=dark_skin, depth=1.0)
        look = yaw * 0.3 * ew
        ir = min(ew * 0.5, max(eh, 0.004) * 1.05)
        cv.poly(_ellipse(ex + look, ey, ir, min(ir, max(eh, 0.003)), n=14), fill=fp.iris, depth=1.0)
        cv.poly(_ellipse(ex + look, ey, ir * 0.45, min(ir, max(eh, 0.003)) * 0.45, n=10), fill=(10, 10, 10), depth=1.0)
        # brow
        by = ey - fp.brow_gap * fh - 0.012 * brow_raise
        bx = np.linspace(-1.2, 1.2, 7)
        if fp.brow_shape == 0:
            bys = np.zeros_like(bx)
        elif fp.brow_shape == 1:
            bys = -0.35 * (1 - bx**2 / 1.44)
        else:
            bys = np.where(side * bx < 0.3, -0.35 * (side * bx + 1.2) / 1.5, -0.35 + 0.6 * (side * bx - 0.3))
        pts = np.stack([ex + bx * ew, by + bys * ew + side * fp.brow_tilt * bx * ew * 0.3], 1)
        cv.line(pts, fill=_mix(hair, (0, 0, 0), 0.25), width=fp.brow_thickness, depth=1.0)

    # glasses
    if fp.glasses != "none":
        gw = fp.eye_w * 1.5
        for side in (-1, 1):
            ex = side * fp.eye_spacing * fw
            if fp.glasses == "round":
                frame = _ellipse(ex, ey, gw, gw * 0.85, n=20)
            else:
                frame = np.array([[ex - gw, ey - gw * 0.7], [ex + gw, ey - gw * 0.7],
                                  [ex + gw, ey + gw * 0.7], [ex - gw, ey + gw * 0.7]])
            cv.line(np.concatenate([frame, frame[:1]]), fill=fp.glasses_colour, width=0.012, depth=1.0)
        inner = fp.eye_spacing * fw - gw
        cv.line(np.array([[-inner, ey], [inner, ey]]), fill=fp.glasses_colour, width=0.01, depth=1.0)

    # nose
    ny0, ny1 = ey + 0.03, ey + fp.nose_len * fh + 0.03
    nw = fp.nose_w * fw
    if fp.nose_style == 0:
        cv.line(np.array([[0.0, ny0], [nw * 0.3, ny1], [-nw * 0.3, ny1]]), fill=dark_skin, width=0.01, depth=1.3)
    elif fp.nose_style == 1:
        cv.poly(np.array([[0.0, ny0], [nw * 0.5, ny1], [-nw * 0.5, ny1]]), fill=_mix(skin, (40, 20, 10), 0.2),
                depth=1.3)
    else:
        for side in (-1, 1):
            cv.poly(_ellipse(side * nw * 0.35, ny1, nw * 0.18, nw * 0.1, n=10), fill=_mix(skin, (30, 10, 5), 0.55),
                    depth=1.3)
        cv.line(np.array([[0.0, ny0], [0.0, ny1 - 0.01]]), fill=_mix(skin, (40, 20, 10), 0.15), width=0.008, depth=1.3)

    # mouth
    my = fp.mouth_y * fh
    mw = fp.mouth_w * fw
    x = np.linspace(-mw, mw, 11)
    curve = -smile * 0.02 * (x / mw) ** 2  # corners up for a smile
    upper = np.stack([x, my + curve - fp.lip_thickness * (1 - (x / mw) ** 2) * 0.8], 1)
    opening = mouth_open * 0.035
    lower = np.stack([x[::-1],
                      (my + curve + fp.lip_thickness * (1 - (x / mw) ** 2) + opening * (1 - (x / mw) ** 2))[::-1]], 1)
    cv.poly(np.concatenate([upper, lower]), fill=fp.lip_colour, depth=1.0)
    if opening > 0.008:
        mid = np.stack([x, my + curve + opening * 0.5 * (1 - (x / mw) ** 2)], 1)
        mid2 = np.stack([x[::-1], (my + curve - opening * 0.1 * (1 - (x / mw) ** 2))[::-1]], 1)
        cv.poly(np.concatenate([mid2[::-1], mid[::-1]]), fill=(60, 20, 25), depth=1.0)

    if fp.mole is not None:
        cv.poly(_ellipse(fp.mole[0] * fw, fp.mole[1] * fh, 0.008, 0.008, n=8), fill=(70, 40, 30), depth=1.0)

    # hair on top
    hl = -fp.hairline * fh
    if fp.hair_style != "bald":
        top = _ellipse(0, 0, fw + vol * 0.6, fh + vol, n=32, a0=np.pi, a1=2 * np.pi)
        if fp.hair_style == "spiky":
            top = top.copy()
            top[1:-1:2] *= 1.0 + 0.18
        if fp.hair_style == "afro":
            top = _ellipse(0, -0.1 * fh, fw + vol + 0.02, fh + vol + 0.02, n=32, a0=np.pi, a1=2 * np.pi)
        fringe_x = np.linspace(fw + vol * 0.6, -(fw + vol * 0.6), 9)
        fringe_y = hl + 0.02 * np.sin(np.linspace(0, np.pi, 9)) * (1 if fp.hair_style != "side_part" else -1)
        if fp.hair_style == "side_part":
            fringe_y = fringe_y + fp.part_side * 0.05 * np.linspace(-1, 1, 9)
        cv.poly(np.concatenate([top, np.stack([fringe_x, fringe_y], 1)]), fill=hair, depth=0.5)
    else:
        for side in (-1, 1):
            cv.poly(_ellipse(side * fw * 0.95, -0.15 * fh, 0.025, fh * 0.25, n=12), fill=_mix(hair, skin, 0.3),
                    depth=0.5)

    # lighting, colour temperature, sensor noise; then downsample
    a = np.asarray(img, dtype=np.float32)
    yy, xx = np.mgrid[0:S, 0:S] / S - 0.5
    phi = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0.7, 1.25) * (1 + rng.uniform(0.0, 0.9) * (np.cos(phi) * xx + np.sin(phi) * yy))
    temp = rng.normal(0, 0.08)
    a = a * light[..., None].astype(np.float32) * np.array([1 + temp, 1, 1 - temp], np.float32)
    small = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="RGB").resize((image_size, image_size), Image.BOX)
    b = np.asarray(small, np.float32) + rng.normal(0, 2.0, (image_size, image_size, 1)).astype(np.float32)
    return Image.fromarray(np.clip(b + 0.5, 0, 255).astype(np.uint8), mode="RGB")


# ----------------------------------------------------------------------------- datasets


def _identity_name(i: int) -> str:
    return f"synth_{i + 1:04d}"


def _photo_stem(name: str, j: int) -> str:
    return f"{name}_{j + 1:04d}"


def _expected_files(out: Path, split: dict[str, list[str]], photos: int, kinds: tuple[str, ...]) -> list[Path]:
    files = []
    for part, names in split.items():
        for name in names:
            for j in range(photos):
                stem = _photo_stem(name, j)
                files.append(out / part / name / f"{stem}.jpg")
                files += [out / part / name / DISTORTION_DIR / f"{stem}_{k}.jpg" for k in kinds]
    return files


def make_dataset(
    out: str | os.PathLike,
    identities: int = SynthConfig.identities,  # the defaults of `facelib synth`, defined there once
    photos: int = SynthConfig.photos,
    image_size: int = SynthConfig.image_size,
    seed: int = 0,
    val_identities: int | None = None,
    distortions: bool = True,
    quality: int = 95,
    workers: int | None = None,
) -> dict:
    """Write a synthetic FACECOM-layout dataset: ``out/train/<id>/<id>_0001.jpg``, ``out/val/...``.

    Train and val hold disjoint identities (``synth_0001`` ...; by default 25% of them,
    at least 2, go to val). With ``distortions`` every photo also gets
    ``distortion/<stem>_<kind>.jpg`` for the seven kinds. Output is byte-identical for a
    seed. The parameters are stored in ``out/synthetic.json``; a later call with the same
    parameters whose files are all present reuses them (``reused: True``). A folder made
    with other parameters is replaced; a non-empty ``train/``/``val/`` not made by this
    function is never touched (DataError).

    Returns:
        a summary: counts, paths, ``seconds``, ``images_per_second``, ``reused``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if identities < 3 or photos < 1 or image_size < 16:
        raise ValueError(f"need identities >= 3, photos >= 1, image_size >= 16 "
                         f"(got {identities}, {photos}, {image_size})")
    n_val = max(2, round(0.25 * identities)) if val_identities is None else int(val_identities)
    if not 0 <= n_val <= identities - 1:
        raise ValueError(f"val_identities must be in [0, {identities - 1}], got {val_identities}")
    names = [_identity_name(i) for i in range(identities)]
    split = {"train": names[: identities - n_val], "val": names[identities - n_val :]}
    kinds = tuple(KINDS) if distortions else ()
    params = {
        "format": FORMAT_VERSION,
        "identities": identities,
        "photos": photos,
        "image_size": image_size,
        "seed": seed,
        "val_identities": n_val,
        "distortions": bool(distortions),
        "quality": quality,
    }
    meta_path = out / "synthetic.json"
    expected = _expected_files(out, split, photos, kinds)
    summary = {
        **params,
        "out": str(out),
        "train": str(out / "train"),
        "val": str(out / "val"),
        "train_identities": len(split["train"]),
        "clean": identities * photos,
        "distorted": identities * photos * len(kinds),
        "files": len(expected),
    }

    old = None
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            old = None
    if old is not None and old.get("params") == params and all(p.is_file() for p in expected):
        return {**summary, "reused": True, "seconds": time.perf_counter() - t0, "images_per_second": None}
    for part in ("train", "val"):
        d = out / part
        if d.is_dir() and any(d.iterdir()):
            if old is None:
                raise DataError(f"{d} is not empty and was not made by make_dataset (no {meta_path.name}); "
                                "refusing to overwrite")
            shutil.rmtree(d)
    if meta_path.exists():
        meta_path.unlink()

    jobs = [(part, i, j) for part, ns in split.items() for i, _ in enumerate(ns) for j in range(photos)]
    offset = {"train": 0, "val": len(split["train"])}

    def work(job: tuple[str, int, int]) -> None:
        part, i, j = job
        gi = offset[part] + i
        name = names[gi]
        fp = sample_identity(np.random.default_rng([seed, 1, gi]))
        img = render_face(fp, np.random.default_rng([seed, 2, gi, j]), image_size)
        stem = _photo_stem(name, j)
        folder = out / part / name
        save_jpeg(img, folder / f"{stem}.jpg", quality=quality)
        for k in kinds:
            save_jpeg(distort(img, k, image_rng(seed, name, stem, k)), folder / DISTORTION_DIR / f"{stem}_{k}.jpg",
                      quality)

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(work, jobs))
    seconds = time.perf_counter() - t0
    write_json(meta_path, {"params": params, "summary": summary})
    return {**summary, "reused": False, "seconds": seconds, "images_per_second": len(expected) / max(seconds, 1e-9)}
