"""Drawn pizza, steak and sushi: the course's offline stand-in for the Food-101 subset.

The original course trains on `pizza_steak_sushi.zip`, 10 % (or 20 %) of the Food-101
photos of three classes. This module *draws* images of the same three classes instead, so
lessons 04-09 run with no network. They are not photographs and are never stored under the
real dataset's name: the folders end in `_drawn` and carry a `drawn_food.json` marker.

    from course.food import make_food_images
    root = make_food_images("data/pizza_steak_sushi_drawn", subset="10%")
    # root/train/pizza/pizza_0000.jpg ... root/test/sushi/sushi_0024.jpg

What varies from image to image (so that, as with the real photos, a small CNN trained from
scratch on 225 images stays mediocre while the classes stay learnable for a stronger model):
the dish's pose, size, position and squash (camera angle), its colours, the plate or board,
the table texture, clutter on the table (cutlery, glasses, bowls, napkins, coloured shapes,
now and then a bite of another class's food), objects in front of the dish, lighting
gradients, colour casts, blur, sensor noise and JPEG quality.

Deterministic: each image's random generator is seeded from (seed, split, class, index)
alone and the JPEG options are fixed, so the same seed gives the same bytes (with the same
Pillow/libjpeg build). Writes are atomic: the folder is built next to its target and
renamed when complete, and a folder this module did not make is never touched.
"""
from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

CLASSES = ("pizza", "steak", "sushi")
SPLITS = ("train", "test")
# Images per class (train, test), as in the original pizza_steak_sushi zips.
SUBSETS = {"10%": (75, 25), "20%": (150, 50)}
DEFAULT_FOLDERS = {"10%": "pizza_steak_sushi_drawn", "20%": "pizza_steak_sushi_20_percent_drawn"}
DEFAULT_SEED = 42
DEFAULT_SIZE = 256
GENERATOR_VERSION = 1  # bump when the drawing changes: old caches then stop matching
MARKER = "drawn_food.json"
# Fixed JPEG options (only the quality varies, drawn from each image's own generator).
JPEG_OPTIONS = {"format": "JPEG", "optimize": False, "progressive": False, "subsampling": 2}

_SPLIT_IDS = {"train": 0, "test": 1}
_CLASS_IDS = {name: i for i, name in enumerate(CLASSES)}


# --------------------------------------------------------------------------- colours
def _hsv(rng: np.random.Generator, h: tuple, s: tuple, v: tuple, alpha: int | None = None) -> tuple:
    """A random colour with hue/saturation/value drawn from the given ranges (hue wraps)."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*h) % 1.0, rng.uniform(*s), rng.uniform(*v))
    rgb = (int(r * 255), int(g * 255), int(b * 255))
    return rgb if alpha is None else rgb + (alpha,)


def _pick(rng: np.random.Generator, options: tuple):
    """One element of `options` (any objects), chosen with `rng`."""
    return options[int(rng.integers(len(options)))]


def _shade(color: tuple, factor: float) -> tuple:
    """Scale a colour's RGB by `factor` (keeps alpha)."""
    rgb = tuple(int(max(0, min(255, c * factor))) for c in color[:3])
    return rgb + tuple(color[3:])


def _any_color(rng: np.random.Generator, alpha: int | None = None) -> tuple:
    return _hsv(rng, (0, 1), (0.1, 0.9), (0.2, 1.0), alpha)


# Palettes shared by the dishes and by the clutter, so colour alone does not give a class away.
def _red_sauce(rng):
    return _hsv(rng, (-0.03, 0.06), (0.55, 0.95), (0.45, 0.9))


def _cheese(rng):
    return _hsv(rng, (0.09, 0.16), (0.1, 0.6), (0.8, 1.0))


def _crust(rng):
    return _hsv(rng, (0.06, 0.12), (0.35, 0.75), (0.5, 0.9))


def _meat(rng):
    return _hsv(rng, (0.01, 0.08), (0.4, 0.85), (0.22, 0.6))


def _rice(rng):
    return _hsv(rng, (0.08, 0.16), (0.0, 0.15), (0.8, 1.0))


def _nori(rng):
    return _hsv(rng, (0.2, 0.42), (0.2, 0.6), (0.06, 0.22))


def _fish(rng):
    kind = rng.integers(4)
    if kind == 0:  # salmon
        return _hsv(rng, (0.02, 0.07), (0.5, 0.85), (0.85, 1.0))
    if kind == 1:  # tuna
        return _hsv(rng, (-0.03, 0.01), (0.55, 0.9), (0.45, 0.8))
    if kind == 2:  # white fish / squid
        return _hsv(rng, (0.0, 0.15), (0.03, 0.2), (0.85, 1.0))
    return _hsv(rng, (0.04, 0.09), (0.5, 0.8), (0.25, 0.5))  # eel (steak-brown on purpose)


def _green(rng):
    return _hsv(rng, (0.22, 0.38), (0.45, 0.9), (0.3, 0.8))


FOOD_PALETTE = (_red_sauce, _cheese, _crust, _meat, _rice, _nori, _fish, _green)


# --------------------------------------------------------------------------- geometry
@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to [-1, 1], cached per image size."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    return np.meshgrid(axis, axis)


def _blob(rng, cx, cy, rx, ry, n=28, wobble=0.12, angle=None) -> list[tuple[float, float]]:
    """An irregular closed outline around (cx, cy): an ellipse with low-frequency wobble."""
    angle = rng.uniform(0, 2 * math.pi) if angle is None else angle
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    radius = np.ones(n)
    for k in (2, 3, 5):
        radius += wobble / k * 1.5 * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    x, y = rx * radius * np.cos(t), ry * radius * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + ca * a - sa * b, cy + sa * a + ca * b) for a, b in zip(x, y)]


def _rotated_rect(cx, cy, w, h, angle) -> list[tuple[float, float]]:
    ca, sa = math.cos(angle), math.sin(angle)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [(cx + ca * x - sa * y, cy + sa * x + ca * y) for x, y in corners]


def _ellipse(draw, cx, cy, rx, ry, **kwargs):
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], **kwargs)


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] (bicubic upsampling of a small random grid)."""
    small = Image.fromarray(rng.random((cells, cells), dtype=np.float32))  # mode "F"
    return np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32)


# --------------------------------------------------------------------------- the table
def _background(rng, size: int) -> Image.Image:
    """A table: wood, cloth check, stone or a plain surface."""
    x, y = _grid(size)
    kind = rng.choice(["wood", "check", "stone", "plain"], p=[0.35, 0.2, 0.25, 0.2])
    if kind == "wood":
        base = np.array(_hsv(rng, (0.04, 0.12), (0.25, 0.75), (0.3, 0.9)), dtype=np.float32)
        a = rng.uniform(0, math.pi)
        u, v = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
        wobble = rng.uniform(0.02, 0.08) * np.sin(rng.uniform(2, 6) * u + rng.uniform(0, 6.3))
        grain = np.sin(rng.uniform(20, 70) * (v + wobble)) * 0.5 + 0.5
        planks = (np.floor((v + 1) * rng.uniform(2, 5)) % 2) * rng.uniform(-0.08, 0.08)
        tone = 0.8 + 0.25 * grain + planks
        img = base[None, None, :] * tone[..., None]
    elif kind == "check":
        c1 = np.array(_any_color(rng), dtype=np.float32)
        c2 = np.array(_hsv(rng, (0, 1), (0, 0.2), (0.85, 1.0)), dtype=np.float32)
        cells = rng.uniform(3, 10)
        a = rng.uniform(-0.4, 0.4)
        u, v = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
        mask = ((np.floor((u + 1) * cells) + np.floor((v + 1) * cells)) % 2)[..., None]
        img = c1 * mask + c2 * (1 - mask)
    elif kind == "stone":
        base = np.array(_hsv(rng, (0, 1), (0, 0.25), (0.15, 0.95)), dtype=np.float32)
        noise = 0.6 * _smooth_noise(rng, size, 6) + 0.4 * _smooth_noise(rng, size, 24)
        img = base[None, None, :] * (0.75 + 0.5 * noise[..., None])
    else:
        img = np.broadcast_to(np.array(_any_color(rng), dtype=np.float32), (size, size, 3))
    img = img + rng.uniform(1, 6) * rng.standard_normal((size, size, 1), dtype=np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))  # mode "RGB"


def _clutter(canvas: Image.Image, rng, label: str, count: int) -> None:
    """Things on the table around the dish: cutlery, glasses, bowls, napkins, shapes, other food."""
    size = canvas.size[0]
    draw = ImageDraw.Draw(canvas, "RGBA")
    for _ in range(count):
        kind = rng.choice(["cutlery", "glass", "bowl", "napkin", "shape", "sticks", "crumbs"])
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size
        s = rng.uniform(0.08, 0.3) * size
        if kind == "cutlery":
            color = _hsv(rng, (0, 1), (0, 0.15), (0.45, 0.95))
            a = rng.uniform(0, math.pi)
            draw.polygon(_rotated_rect(cx, cy, s * 2.5, s * 0.12, a), fill=color)
            hx, hy = cx + math.cos(a) * s * 1.3, cy + math.sin(a) * s * 1.3
            draw.polygon(_rotated_rect(hx, hy, s * 0.7, s * 0.25, a), fill=_shade(color, 0.8))
        elif kind == "glass":
            _ellipse(draw, cx, cy, s, s, fill=_hsv(rng, (0, 1), (0, 0.4), (0.6, 1), alpha=70),
                     outline=_hsv(rng, (0, 1), (0, 0.2), (0.8, 1), alpha=200), width=max(1, int(s * 0.08)))
        elif kind == "bowl":
            _ellipse(draw, cx, cy, s, s * rng.uniform(0.7, 1), fill=_any_color(rng))
            inner = _pick(rng, FOOD_PALETTE)(rng)
            _ellipse(draw, cx, cy, s * 0.75, s * 0.75 * rng.uniform(0.7, 1), fill=inner)
        elif kind == "napkin":
            draw.polygon(_rotated_rect(cx, cy, s * 2, s * 1.4, rng.uniform(0, math.pi)), fill=_any_color(rng))
        elif kind == "shape":
            color = _pick(rng, FOOD_PALETTE)(rng) if rng.random() < 0.6 else _any_color(rng)
            draw.polygon(_blob(rng, cx, cy, s * 0.6, s * rng.uniform(0.3, 0.6), n=10, wobble=0.3), fill=color)
        elif kind == "sticks":
            color = _hsv(rng, (0.05, 0.12), (0.2, 0.7), (0.1, 0.8))
            a = rng.uniform(0, math.pi)
            for off in (-0.08, 0.08):
                draw.polygon(_rotated_rect(cx + off * s, cy + off * s * 0.3, s * 3, s * 0.06, a), fill=color)
        else:
            for _ in range(int(rng.integers(5, 25))):
                px, py = cx + rng.normal(0, s), cy + rng.normal(0, s)
                r = rng.uniform(1, 3) * size / 256
                _ellipse(draw, px, py, r, r, fill=_pick(rng, FOOD_PALETTE)(rng))
    if rng.random() < 0.1:  # a bite of another class's food at the edge of the frame
        other = rng.choice([c for c in CLASSES if c != label])
        layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        DISHES[other](layer, rng, size / 2, size / 2, size * 0.3)
        small = layer.resize((size // 2, size // 2), Image.BILINEAR).rotate(rng.uniform(0, 360))
        corner = rng.choice([-0.25, 0.75], 2) * size + rng.uniform(-0.1, 0.1, 2) * size
        canvas.paste(small, (int(corner[0]), int(corner[1])), small)


# --------------------------------------------------------------------------- the dishes
def _draw_pizza(layer: Image.Image, rng, cx: float, cy: float, r: float) -> None:
    """A round pizza: crust, sauce, cheese blotches, toppings; sometimes cut or missing slices."""
    food = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(food)
    crust = _crust(rng)
    draw.polygon(_blob(rng, cx, cy, r, r, n=36, wobble=0.04), fill=crust)
    rim = r * rng.uniform(0.07, 0.2)
    white_pizza = rng.random() < 0.15
    sauce = _cheese(rng) if white_pizza else _red_sauce(rng)
    draw.polygon(_blob(rng, cx, cy, r - rim, r - rim, n=36, wobble=0.05), fill=sauce)
    # Charred bubbles on the crust.
    for _ in range(int(rng.integers(3, 12))):
        a = rng.uniform(0, 2 * math.pi)
        rr = r - rim / 2
        _ellipse(draw, cx + rr * math.cos(a), cy + rr * math.sin(a), rim * 0.4, rim * 0.3, fill=_shade(crust, 0.55))
    cheese = _cheese(rng)
    inner = r - rim
    for _ in range(int(rng.integers(6, 30))):
        d, a = inner * math.sqrt(rng.random()) * 0.9, rng.uniform(0, 2 * math.pi)
        s = inner * rng.uniform(0.08, 0.3)
        draw.polygon(_blob(rng, cx + d * math.cos(a), cy + d * math.sin(a), s, s * rng.uniform(0.5, 1), n=10,
                           wobble=0.3), fill=_shade(cheese, rng.uniform(0.9, 1.05)))
    kinds = rng.choice(["pepperoni", "basil", "olive", "mushroom", "pepper", "ham"], size=int(rng.integers(1, 4)),
                       replace=False)
    for kind in kinds:
        color = {"pepperoni": _red_sauce, "basil": _green, "pepper": _green}.get(kind, _any_color)(rng)
        if kind == "olive":
            color = _hsv(rng, (0, 1), (0, 0.3), (0.02, 0.2))
        if kind == "ham":
            color = _hsv(rng, (-0.05, 0.02), (0.25, 0.5), (0.75, 0.95))
        for _ in range(int(rng.integers(3, 14))):
            d, a = inner * math.sqrt(rng.random()) * 0.85, rng.uniform(0, 2 * math.pi)
            px, py = cx + d * math.cos(a), cy + d * math.sin(a)
            s = inner * rng.uniform(0.07, 0.15)
            if kind == "pepperoni":
                _ellipse(draw, px, py, s, s, fill=_shade(color, 0.8))
                for _ in range(3):
                    _ellipse(draw, px + rng.normal(0, s / 3), py + rng.normal(0, s / 3), s / 6, s / 6,
                             fill=_shade(color, 0.55))
            elif kind == "olive":
                _ellipse(draw, px, py, s * 0.6, s * 0.6, outline=color, width=max(1, int(s * 0.3)))
            elif kind == "pepper":
                draw.arc([px - s, py - s, px + s, py + s], rng.uniform(0, 360), rng.uniform(0, 360) + 150,
                         fill=color, width=max(1, int(s * 0.3)))
            elif kind == "ham":
                draw.polygon(_rotated_rect(px, py, s * 1.6, s * 1.1, rng.uniform(0, 3)), fill=color)
            else:
                draw.polygon(_blob(rng, px, py, s * 0.8, s * 0.4, n=8, wobble=0.2), fill=color)
    style = rng.random()
    if style < 0.4:  # cut into slices
        offset = rng.uniform(0, 2 * math.pi)
        k = int(rng.choice([4, 6, 8]))
        for i in range(k):
            a = offset + 2 * math.pi * i / k
            draw.line([(cx, cy), (cx + r * math.cos(a), cy + r * math.sin(a))], fill=_shade(sauce, 0.5),
                      width=max(1, int(r * 0.025)))
    elif style < 0.65:  # one or two slices already eaten
        start = rng.uniform(0, 360)
        draw.pieslice([cx - r * 1.05, cy - r * 1.05, cx + r * 1.05, cy + r * 1.05], start,
                      start + rng.choice([45, 60, 90, 120]), fill=(0, 0, 0, 0))
    elif style < 0.75:  # a single slice
        start = rng.uniform(0, 360)
        keep = Image.new("L", food.size, 0)
        ImageDraw.Draw(keep).pieslice([cx - r, cy - r, cx + r, cy + r], start, start + rng.uniform(40, 70), fill=255)
        food.putalpha(ImageChops.multiply(food.getchannel("A"), keep))
    layer.alpha_composite(food)


def _draw_steak(layer: Image.Image, rng, cx: float, cy: float, r: float) -> None:
    """An irregular brown steak: fat edge, grill marks, seared texture, sometimes sliced; garnish."""
    draw = ImageDraw.Draw(layer)
    angle = rng.uniform(0, 2 * math.pi)
    rx, ry = r, r * rng.uniform(0.5, 0.85)
    wobble = rng.uniform(0.08, 0.22)
    outline = _blob(rng, cx, cy, rx, ry, n=28, wobble=wobble, angle=angle)
    meat = _meat(rng)
    fat = _hsv(rng, (0.08, 0.14), (0.12, 0.4), (0.72, 0.95))
    has_fat = rng.random() < 0.7
    draw.polygon(outline, fill=fat if has_fat else meat)
    if has_fat:  # pull the meat in from the outline along one stretch of it
        n = len(outline)
        start, span = int(rng.integers(n)), int(rng.integers(n // 5, n // 2))
        width = rng.uniform(0.06, 0.14)
        inner = []
        for i, (px, py) in enumerate(outline):
            on_fat = (i - start) % n < span
            k = 1 - width if on_fat else 1.0
            inner.append((cx + (px - cx) * k, cy + (py - cy) * k))
        draw.polygon(inner, fill=meat)
    mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    for _ in range(int(rng.integers(15, 60))):  # seared speckles
        px, py = cx + rng.normal(0, rx / 2), cy + rng.normal(0, ry / 2)
        s = r * rng.uniform(0.02, 0.07)
        _ellipse(draw, px, py, s, s * rng.uniform(0.4, 1), fill=_shade(meat, rng.uniform(0.6, 1.3)))
    if rng.random() < 0.25:  # sliced: pink strips across
        pink = _hsv(rng, (-0.04, 0.03), (0.35, 0.7), (0.6, 0.9))
        strips = Image.new("L", layer.size, 0)
        sd = ImageDraw.Draw(strips)
        a = rng.uniform(0, math.pi)
        step = r * rng.uniform(0.25, 0.4)
        for k in range(-4, 5):
            ox, oy = cx + k * step * math.cos(a), cy + k * step * math.sin(a)
            sd.polygon(_rotated_rect(ox, oy, step * 0.55, r * 3, a), fill=255)
        strips = ImageChops.multiply(strips, mask.filter(ImageFilter.MinFilter(5)))
        layer.paste(pink, mask=strips)
    if rng.random() < 0.75:  # grill marks
        marks = Image.new("L", layer.size, 0)
        md = ImageDraw.Draw(marks)
        dark = _hsv(rng, (0.02, 0.08), (0.3, 0.8), (0.05, 0.2))
        sets = [rng.uniform(0, math.pi)]
        if rng.random() < 0.35:
            sets.append(sets[0] + rng.uniform(0.9, 1.6))
        step = r * rng.uniform(0.17, 0.3)
        for a in sets:
            for k in range(-6, 7):
                ox, oy = cx + k * step * math.cos(a), cy + k * step * math.sin(a)
                md.polygon(_rotated_rect(ox, oy, r * rng.uniform(0.04, 0.08), r * 3, a), fill=230)
        layer.paste(dark, mask=ImageChops.multiply(marks, mask))
    garnishes = int(rng.integers(0, 4))
    for _ in range(garnishes):
        a = rng.uniform(0, 2 * math.pi)
        d = r * rng.uniform(0.9, 1.3)
        gx, gy = cx + d * math.cos(a), cy + d * math.sin(a)
        kind = rng.choice(["rosemary", "beans", "tomato", "fries", "mash", "butter"])
        s = r * rng.uniform(0.15, 0.35)
        if kind == "rosemary":
            color = _green(rng)
            b = rng.uniform(0, math.pi)
            x2, y2 = gx + s * 2 * math.cos(b), gy + s * 2 * math.sin(b)
            draw.line([(gx, gy), (x2, y2)], fill=_shade(color, 0.7), width=max(1, int(s * 0.08)))
            for t in np.linspace(0.1, 0.9, 8):
                px, py = gx + (x2 - gx) * t, gy + (y2 - gy) * t
                for side in (-1, 1):
                    draw.line([(px, py), (px + side * s * 0.3 * math.sin(b), py - side * s * 0.3 * math.cos(b))],
                              fill=color, width=max(1, int(s * 0.08)))
        elif kind == "beans":
            color = _green(rng)
            for _ in range(int(rng.integers(3, 7))):
                draw.polygon(_rotated_rect(gx + rng.normal(0, s / 3), gy + rng.normal(0, s / 3), s * 1.8, s * 0.2,
                                           rng.uniform(0, 0.6)), fill=_shade(color, rng.uniform(0.85, 1.15)))
        elif kind == "tomato":
            color = _red_sauce(rng)
            for _ in range(int(rng.integers(1, 4))):
                px, py = gx + rng.normal(0, s / 2), gy + rng.normal(0, s / 2)
                _ellipse(draw, px, py, s * 0.45, s * 0.45, fill=color)
                _ellipse(draw, px - s * 0.12, py - s * 0.12, s * 0.1, s * 0.1, fill=_shade(color, 1.6))
        elif kind == "fries":
            color = _hsv(rng, (0.1, 0.15), (0.4, 0.8), (0.8, 1.0))
            for _ in range(int(rng.integers(4, 10))):
                draw.polygon(_rotated_rect(gx + rng.normal(0, s / 2), gy + rng.normal(0, s / 2), s * 1.5, s * 0.22,
                                           rng.uniform(0, math.pi)), fill=_shade(color, rng.uniform(0.85, 1.1)))
        elif kind == "mash":
            draw.polygon(_blob(rng, gx, gy, s, s * 0.8, n=14, wobble=0.2), fill=_cheese(rng))
        else:
            draw.polygon(_rotated_rect(gx, gy, s * 0.6, s * 0.5, rng.uniform(0, 1)), fill=_cheese(rng))


def _nigiri(draw, rng, cx, cy, u, angle, fish) -> None:
    rice = _rice(rng)
    w, h = u * rng.uniform(0.9, 1.2), u * rng.uniform(0.5, 0.65)
    draw.polygon(_blob(rng, cx, cy, w / 2, h / 2, n=16, wobble=0.05, angle=angle), fill=rice)
    for _ in range(int(rng.integers(4, 12))):  # grains
        px, py = cx + rng.normal(0, w / 5), cy + rng.normal(0, h / 5)
        _ellipse(draw, px, py, u * 0.04, u * 0.025, fill=_shade(rice, rng.uniform(0.85, 0.95)))
    draw.polygon(_blob(rng, cx, cy, w * 0.56, h * rng.uniform(0.3, 0.42), n=16, wobble=0.06, angle=angle), fill=fish)
    if rng.random() < 0.6:  # the white fat lines of salmon or tuna
        for k in np.linspace(-0.35, 0.35, int(rng.integers(3, 6))):
            px, py = cx + k * w * math.cos(angle), cy + k * w * math.sin(angle)
            dx, dy = -math.sin(angle + 0.4) * h * 0.3, math.cos(angle + 0.4) * h * 0.3
            draw.line([(px - dx, py - dy), (px + dx, py + dy)], fill=_shade(fish, 1.35), width=max(1, int(u * 0.04)))
    if rng.random() < 0.3:  # a band of nori
        draw.polygon(_rotated_rect(cx, cy, u * 0.2, h * 1.05, angle), fill=_nori(rng))


def _maki(draw, rng, cx, cy, u) -> None:
    s = u * rng.uniform(0.3, 0.42)
    _ellipse(draw, cx, cy, s, s, fill=_nori(rng))
    _ellipse(draw, cx, cy, s * 0.85, s * 0.85, fill=_rice(rng))
    for _ in range(int(rng.integers(1, 4))):
        color = _pick(rng, (_fish, _green, _cheese, _red_sauce))(rng)
        px, py = cx + rng.normal(0, s * 0.15), cy + rng.normal(0, s * 0.15)
        _ellipse(draw, px, py, s * rng.uniform(0.15, 0.35), s * rng.uniform(0.15, 0.35), fill=color)


def _draw_sushi(layer: Image.Image, rng, cx: float, cy: float, r: float) -> None:
    """Several pieces of sushi: nigiri (rice + fish), maki rolls with nori, sashimi; wasabi, ginger."""
    draw = ImageDraw.Draw(layer)
    n = int(rng.integers(1, 8))
    cols = int(math.ceil(math.sqrt(n))) if rng.random() < 0.6 else min(n, 4)
    rows = int(math.ceil(n / cols))
    u = 2.2 * r / max(cols, rows * 0.8, 1.3)
    angle = rng.uniform(-0.3, 0.3)
    fishes = [_fish(rng) for _ in range(int(rng.integers(1, 4)))]
    style = rng.random()
    for i in range(n):
        px = cx + (i % cols - (cols - 1) / 2) * u * 1.05 + rng.normal(0, u * 0.04)
        py = cy + (i // cols - (rows - 1) / 2) * u * 0.8 + rng.normal(0, u * 0.04)
        pick = rng.random()
        if style < 0.45 or (style < 0.75 and pick < 0.5):
            _nigiri(draw, rng, px, py, u, angle + rng.normal(0, 0.1), fishes[i % len(fishes)])
        elif style < 0.9 or pick < 0.8:
            _maki(draw, rng, px, py, u)
        else:  # sashimi: fish slices alone
            fish = fishes[i % len(fishes)]
            for k in range(3):
                draw.polygon(_blob(rng, px + k * u * 0.12, py, u * 0.45, u * 0.2, n=12, wobble=0.05, angle=angle),
                             fill=_shade(fish, 1 - 0.05 * k))
    if rng.random() < 0.6:  # wasabi
        wx, wy = cx + rng.uniform(-1, 1) * r, cy + rng.choice([-1, 1]) * r * rng.uniform(0.6, 0.9)
        draw.polygon(_blob(rng, wx, wy, r * 0.12, r * 0.1, n=10, wobble=0.25),
                     fill=_hsv(rng, (0.2, 0.3), (0.4, 0.8), (0.5, 0.85)))
    if rng.random() < 0.5:  # pickled ginger
        gx, gy = cx + rng.uniform(-1, 1) * r, cy + rng.choice([-1, 1]) * r * rng.uniform(0.6, 0.9)
        ginger = _hsv(rng, (-0.05, 0.08), (0.15, 0.45), (0.85, 1.0))
        for _ in range(int(rng.integers(2, 5))):
            draw.polygon(_blob(rng, gx + rng.normal(0, r * 0.05), gy + rng.normal(0, r * 0.05), r * 0.12, r * 0.06,
                               n=10, wobble=0.1), fill=_shade(ginger, rng.uniform(0.9, 1.05)))


DISHES = {"pizza": _draw_pizza, "steak": _draw_steak, "sushi": _draw_sushi}


def _plate(layer: Image.Image, rng, cx: float, cy: float, r: float) -> None:
    """A plate, board or tray under the dish (or nothing: food straight on the table)."""
    draw = ImageDraw.Draw(layer)
    kind = rng.choice(["round", "board", "none"], p=[0.55, 0.3, 0.15])
    if kind == "round":
        color = _hsv(rng, (0, 1), (0, 0.35), (0.15, 1.0))
        _ellipse(draw, cx, cy, r, r, fill=color)
        _ellipse(draw, cx, cy, r * 0.8, r * 0.8, fill=_shade(color, rng.uniform(0.88, 1.05)))
    elif kind == "board":
        color = _hsv(rng, (0, 0.14), (0, 0.7), (0.1, 0.9))
        w, h = r * rng.uniform(1.6, 2.2), r * rng.uniform(1.2, 1.9)
        draw.rounded_rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], radius=r * 0.08, fill=color)


def _occluders(canvas: Image.Image, rng) -> None:
    """Something in front of the dish: a hand, a napkin, a glass, a utensil, the edge of a plate."""
    size = canvas.size[0]
    draw = ImageDraw.Draw(canvas, "RGBA")
    for _ in range(int(rng.poisson(0.3))):
        side = rng.integers(4)
        t = rng.uniform(0, 1) * size
        cx, cy = [(t, 0), (t, size), (0, t), (size, t)][side]
        s = size * rng.uniform(0.12, 0.3)
        kind = rng.choice(["hand", "napkin", "glass", "utensil", "plate"])
        if kind == "hand":
            draw.polygon(_blob(rng, cx, cy, s, s * 0.6, n=14, wobble=0.15),
                         fill=_hsv(rng, (0.03, 0.09), (0.2, 0.6), (0.35, 0.95)))
        elif kind == "napkin":
            draw.polygon(_rotated_rect(cx, cy, s * 2, s * 1.2, rng.uniform(0, math.pi)), fill=_any_color(rng))
        elif kind == "glass":
            _ellipse(draw, cx, cy, s, s, fill=_hsv(rng, (0, 1), (0, 0.5), (0.5, 1), alpha=90))
        elif kind == "utensil":
            draw.polygon(_rotated_rect(cx, cy, s * 3, s * 0.15, rng.uniform(0, math.pi)),
                         fill=_hsv(rng, (0, 1), (0, 0.2), (0.4, 0.95)))
        else:
            _ellipse(draw, cx, cy, s * 1.5, s * 1.5, fill=_hsv(rng, (0, 1), (0, 0.3), (0.5, 1)))


def _photograph(canvas: Image.Image, rng) -> Image.Image:
    """Camera effects: lighting gradient, vignette, colour cast, contrast, blur, noise."""
    size = canvas.size[0]
    if rng.random() < 0.35:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6) * size / 256))
    img = np.asarray(canvas, dtype=np.float32)
    x, y = _grid(size)
    a = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0, 0.45) * (x * math.cos(a) + y * math.sin(a))
    light = light * (1 - rng.uniform(0, 0.35) * (x * x + y * y) / 2)
    if rng.random() < 0.3:  # a soft highlight, as from a lamp
        hx, hy = rng.uniform(-0.8, 0.8, 2)
        light = light + rng.uniform(0.1, 0.35) * np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / rng.uniform(0.05, 0.3))
    gains = rng.normal(1, 0.06, 3).astype(np.float32) * rng.uniform(0.75, 1.2)
    img = img * (light[..., None] * gains)
    mean = float(img.mean())
    contrast = rng.uniform(0.75, 1.25)
    img *= contrast
    img += mean * (1 - contrast)
    img += rng.uniform(0, 9) * rng.standard_normal((size, size, 1), dtype=np.float32)  # sensor noise
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))  # mode "RGB"


def draw_food(label: str, rng: np.random.Generator, size: int = DEFAULT_SIZE) -> Image.Image:
    """Draw one RGB image of `label` ("pizza", "steak" or "sushi") with generator `rng`.

    Args:
        label: one of CLASSES.
        rng: the NumPy generator every random choice comes from (seed it for repeatable images).
        size: width and height in pixels.

    Returns:
        A `size` x `size` RGB PIL image.
    """
    if label not in DISHES:
        raise ValueError(f"label={label!r} is not one of {', '.join(CLASSES)}. Pass one of those.")
    canvas = _background(rng, size)
    _clutter(canvas, rng, label, count=int(rng.integers(0, 4)))
    scene = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    c = size / 2
    _plate(scene, rng, c, c, size * 0.46)
    DISHES[label](scene, rng, c, c, size * rng.uniform(0.3, 0.38))
    # Camera pose: turn, zoom (from a distant dish to a close-up), squash (viewing angle), shift.
    scene = scene.rotate(rng.uniform(0, 360), resample=Image.BILINEAR)
    zoom = math.exp(rng.uniform(math.log(0.85), math.log(1.6)))
    squash = rng.uniform(0.6, 1.0)
    w, h = max(1, int(size * zoom)), max(1, int(size * zoom * squash))
    scene = scene.resize((w, h), Image.BILINEAR)
    shift = rng.uniform(-0.25, 0.25, 2) * size
    canvas.paste(scene, (int(c - w / 2 + shift[0]), int(c - h / 2 + shift[1])), scene)
    _occluders(canvas, rng)
    return _photograph(canvas, rng)


# --------------------------------------------------------------------------- the folder
def image_rng(seed: int, split: str, label: str, index: int) -> np.random.Generator:
    """The generator for one image, seeded from (seed, split, class, index) and nothing else."""
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], _CLASS_IDS[label], int(index)])


def marker_for(subset: str, seed: int, image_size: int, per_class: tuple[int, int]) -> dict:
    """The contents of the marker file that identifies a folder this module made."""
    return {
        "what": "Procedurally drawn pizza/steak/sushi images: the course's offline stand-in for the "
                "Food-101 pizza_steak_sushi subset. Not photographs.",
        "made_by": "course.food",
        "version": GENERATOR_VERSION,
        "subset": subset,
        "seed": int(seed),
        "image_size": int(image_size),
        "train_per_class": int(per_class[0]),
        "test_per_class": int(per_class[1]),
        "classes": list(CLASSES),
    }


def cached(root: Path, marker: dict) -> bool:
    """True if `root` is a finished folder with this exact marker; False if it does not exist.

    Raises:
        FileExistsError: `root` exists but was not made by this module with these settings
            (it is left untouched).
    """
    root = Path(root)
    if not root.exists():
        return False
    if root.is_dir() and not any(root.iterdir()):
        return False  # an empty folder: nothing to lose, it may be replaced
    marker_path = root / MARKER
    try:
        found = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    if found == marker:
        return True
    if found is None:
        why = f"it has no readable {MARKER} marker, so it was not made by course.food"
    else:
        changed = sorted(k for k in set(found) | set(marker) if found.get(k) != marker.get(k))
        why = f"its {MARKER} was made with different settings ({', '.join(changed)} differ)"
    raise FileExistsError(
        f"{root} already exists and {why}. It was left untouched. "
        f"Remove or rename that folder to let course.food draw the images there, "
        f"or pass a different root folder."
    )


def make_food_images(
    root: str | Path,
    subset: str = "10%",
    *,
    seed: int = DEFAULT_SEED,
    image_size: int = DEFAULT_SIZE,
    per_class: tuple[int, int] | None = None,
) -> Path:
    """Draw the stand-in ImageFolder at `root` (or reuse it if this module already made it).

    Layout: `root/{train,test}/{pizza,steak,sushi}/<class>_<index>.jpg`, plus `root/drawn_food.json`.

    Args:
        root: the folder to create, e.g. data/pizza_steak_sushi_drawn.
        subset: "10%" (75 train + 25 test images per class) or "20%" (150 + 50).
        seed: the dataset seed; the same seed gives the same bytes.
        image_size: width and height of every image in pixels.
        per_class: (train, test) images per class, overriding the subset's counts (small test sets).

    Returns:
        `root` as a Path.

    Raises:
        ValueError: unknown subset or bad sizes.
        FileExistsError: `root` exists and was not made by this module with these settings.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r} is not one of {', '.join(SUBSETS)}. Use '10%' or '20%'.")
    per_class = tuple(SUBSETS[subset] if per_class is None else per_class)
    if len(per_class) != 2 or min(per_class) < 1 or int(image_size) < 32:
        raise ValueError(
            f"per_class={per_class!r}, image_size={image_size!r}: expected two counts >= 1 (train, test) "
            "and an image size of at least 32 pixels."
        )
    root = Path(root)
    marker = marker_for(subset, seed, image_size, per_class)
    if cached(root, marker):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        os.chmod(build, 0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
        for split, count in zip(SPLITS, per_class):
            for label in CLASSES:
                folder = build / split / label
                folder.mkdir(parents=True)
                for index in range(count):
                    rng = image_rng(seed, split, label, index)
                    image = draw_food(label, rng, image_size)
                    quality = int(rng.integers(35, 96))
                    image.save(folder / f"{label}_{index:04d}.jpg", quality=quality, **JPEG_OPTIONS)
        (build / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        try:
            os.replace(build, root)
        except OSError:
            if cached(root, marker):  # someone else finished the same folder first
                return root
            raise
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return root
