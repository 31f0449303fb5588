"""Synthetic iSAID (FactSeg): large aerial scenes with small objects, colour masks in the real layout."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image

from rsrepro.isaid import encode_color_mask

from ._io import save_png

# FactSeg class index -> (shape, (min, max) long side in px, aspect (short / long), mean RGB, noise).
_ISAID_OBJECTS = {
    1: ("ellipse", (18, 40), 0.3, (196, 198, 204), 8.0),  # ship
    2: ("ellipse", (12, 26), 1.0, (228, 226, 218), 5.0),  # storage_tank (devkit: roundabout colour)
    3: ("sector", (40, 64), 1.0, (176, 132, 86), 9.0),  # baseball_diamond
    4: ("rect", (24, 36), 0.5, (64, 136, 96), 6.0),  # tennis_court
    5: ("rect", (26, 40), 0.55, (182, 112, 64), 6.0),  # basketball_court
    6: ("track", (70, 110), 0.55, (170, 62, 52), 7.0),  # ground_track_field
    7: ("rect", (80, 160), 0.12, (150, 148, 140), 5.0),  # bridge
    8: ("rect", (14, 24), 0.35, (210, 210, 214), 10.0),  # large_vehicle
    9: ("rect", (6, 11), 0.5, (40, 44, 120), 12.0),  # small_vehicle
    10: ("cross", (14, 22), 0.3, (90, 100, 60), 6.0),  # helicopter
    11: ("rect", (12, 28), 0.55, (64, 168, 220), 5.0),  # swimming_pool
    12: ("ring", (40, 70), 1.0, (120, 124, 128), 6.0),  # roundabout (devkit: storage_tank colour)
    13: ("rect", (60, 90), 0.65, (78, 160, 70), 7.0),  # soccer_ball_field
    14: ("cross", (24, 44), 0.9, (236, 236, 240), 6.0),  # plane
    15: ("rect", (50, 120), 0.4, (96, 90, 84), 6.0),  # harbor
}


class ISAIDScene(NamedTuple):
    image: np.ndarray  # h, w, 3 uint8 RGB
    labels: np.ndarray  # h, w uint8 FactSeg class index
    instances: np.ndarray  # h, w int32: 0 background, k >= 1 instance number


def _isaid_shape(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean footprint in local coordinates u (long axis), v (short axis), both scaled to [-1, 1]."""
    if kind == "rect":
        return (np.abs(u) <= 1) & (np.abs(v) <= 1)
    if kind == "ellipse":
        return u * u + v * v <= 1
    if kind == "ring":
        r2 = u * u + v * v
        return (r2 <= 1) & (r2 >= 0.35)
    if kind == "cross":
        return ((np.abs(u) <= 1) & (np.abs(v) <= 0.22)) | ((np.abs(v) <= 1) & (np.abs(u + 0.2) <= 0.18))
    if kind == "sector":
        return (u >= -1) & (v >= -1) & ((u + 1) ** 2 + (v + 1) ** 2 <= 4)
    if kind == "track":
        inner = (np.abs(u) <= 0.45) | ((np.abs(u) - 0.45) ** 2 / 0.3025 + v * v <= 1)
        return inner & (np.abs(v) <= 1) & (np.abs(u) <= 1)
    raise ValueError(f"unknown shape {kind!r}")


def isaid_scene(rng: np.random.Generator, height: int = 1000, width: int = 1200,
                num_objects: Tuple[int, int] = (24, 48)) -> ISAIDScene:
    """One synthetic aerial scene: textured terrain with small objects of several classes."""
    h, w = height, width
    # Terrain: low-frequency blend of two soil / vegetation tones plus fine grain.
    coarse = rng.random((max(2, h // 64), max(2, w // 64)))
    blend = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR),
                       dtype=np.float32)[..., None] / 255.0
    tone_a = np.array(rng.uniform((90, 100, 70), (130, 135, 100)), np.float32)
    tone_b = np.array(rng.uniform((140, 125, 100), (180, 160, 130)), np.float32)
    image = tone_a * (1 - blend) + tone_b * blend + rng.normal(0.0, 6.0, (h, w, 1)).astype(np.float32)
    labels = np.zeros((h, w), np.uint8)
    instances = np.zeros((h, w), np.int32)
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    classes = rng.integers(1, 16, size=count)
    for k, cls in enumerate(classes, start=1):
        kind, (lo, hi), aspect, color, sigma = _ISAID_OBJECTS[int(cls)]
        length = float(rng.uniform(lo, hi))
        half_u, half_v = length / 2.0, max(1.5, length * aspect / 2.0)
        radius = int(np.ceil(np.hypot(half_u, half_v))) + 1
        cy = int(rng.integers(radius, max(radius + 1, h - radius)))
        cx = int(rng.integers(radius, max(radius + 1, w - radius)))
        y0, y1, x0, x1 = max(0, cy - radius), min(h, cy + radius + 1), max(0, cx - radius), min(w, cx + radius + 1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        angle = float(rng.uniform(0, np.pi))
        dy, dx = ys - cy, xs - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / half_u
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / half_v
        footprint = _isaid_shape(kind, u, v)
        if not footprint.any():
            continue
        tint = np.array(color, np.float32) + rng.normal(0.0, 10.0, 3).astype(np.float32)
        patch = image[y0:y1, x0:x1]
        patch[footprint] = tint + rng.normal(0.0, sigma, (int(footprint.sum()), 3)).astype(np.float32)
        labels[y0:y1, x0:x1][footprint] = cls
        instances[y0:y1, x0:x1][footprint] = k
    return ISAIDScene(np.clip(image + 0.5, 0, 255).astype(np.uint8), labels, instances)


def generate_isaid(
    root: str,
    num_train: int = 2,
    num_val: int = 2,
    size: Tuple[int, int] = (1000, 1200),
    num_objects: Tuple[int, int] = (24, 48),
    seed: int = 0,
    unknown_pixels: int = 0,
    sizes: Sequence[Tuple[int, int]] | None = None,
) -> Dict[str, Any]:
    """Write a synthetic iSAID in the real layout (as FactSeg reads it) under ``root``.

    Per image ``P{n:04d}`` (n counts over both splits, as DOTA numbers its images):

    - ``<split>/images/P0000.png``: 8-bit RGB aerial scene;
    - ``<split>/masks/P0000_instance_color_RGB.png``: semantic colour mask (``rsrepro.isaid.PALETTE``);
    - ``<split>/masks/P0000_instance_id_RGB.png``: instance ids as RGB (R + 256 G).

    Args:
        size: (height, width) of every image (default 1000 x 1200), unless ``sizes`` lists one size per
            image (train first, then val), e.g. to include an image smaller than the 896 window.
        num_objects: (min, max) objects per image.
        unknown_pixels: per mask, this many pixels get colours outside the palette (to exercise the
            reader's reporting). Default 0.
        seed: everything is a function of ``seed``.

    Returns a dict: ``root``, ``files`` (split -> list of dicts of written paths), ``seconds``.
    """
    start = time.perf_counter()
    root = os.fspath(root)
    total = num_train + num_val
    if sizes is not None and len(sizes) != total:
        raise ValueError(f"sizes lists {len(sizes)} sizes for {total} images")
    files: Dict[str, List[Dict[str, str]]] = {"train": [], "val": []}
    number = 0
    for split, count in (("train", num_train), ("val", num_val)):
        image_dir = os.path.join(root, split, "images")
        mask_dir = os.path.join(root, split, "masks")
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(mask_dir, exist_ok=True)
        for _ in range(count):
            height, width = (sizes[number] if sizes is not None else size)
            rng = np.random.default_rng((seed, number))
            scene = isaid_scene(rng, int(height), int(width), num_objects)
            color = encode_color_mask(scene.labels)
            if unknown_pixels:
                flat = rng.choice(int(height) * int(width), size=unknown_pixels, replace=False)
                color.reshape(-1, 3)[flat] = (7, 250, 3)  # not a palette colour (key 516, no class)
            stem = f"P{number:04d}"
            written = {"image": os.path.join(image_dir, f"{stem}.png"),
                       "mask": os.path.join(mask_dir, f"{stem}_instance_color_RGB.png"),
                       "instances": os.path.join(mask_dir, f"{stem}_instance_id_RGB.png")}
            save_png(scene.image, written["image"])
            save_png(color, written["mask"])
            ids = scene.instances
            save_png(np.stack([ids % 256, (ids // 256) % 256, np.zeros_like(ids)], axis=2).astype(np.uint8),
                      written["instances"])
            files[split].append(written)
            number += 1
    return {"root": root, "files": files, "seconds": time.perf_counter() - start}


def _isaid_arguments(parser: Any) -> None:
    parser.add_argument("--num_train", type=int, default=2)
    parser.add_argument("--num_val", type=int, default=2)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--min_objects", type=int, default=24)
    parser.add_argument("--max_objects", type=int, default=48)
    parser.add_argument("--unknown_pixels", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)


def _isaid_run(args: argparse.Namespace) -> Dict[str, Any]:
    return generate_isaid(args.out, num_train=args.num_train, num_val=args.num_val, size=(args.height, args.width),
                          num_objects=(args.min_objects, args.max_objects), seed=args.seed,
                          unknown_pixels=args.unknown_pixels)
