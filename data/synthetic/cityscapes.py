"""Synthetic Cityscapes: street scenes built from regions (sky, buildings, vegetation, road with lane marks,
sidewalks, terrain, poles with signs, cars, persons, the ego-vehicle bonnet and a rectification border), each
class with its own colour and texture jittered per image, in the real ``leftImg8bit`` / ``gtFine`` layout.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from ..cityscapes import LABEL_ID_COLORS, LABEL_ID_TO_TRAIN_ID
from ._io import save_png

# labelIds used by the generator.
ROAD, SIDEWALK, BUILDING, POLE, SIGN = 7, 8, 11, 17, 20
VEGETATION, TERRAIN, SKY, PERSON, CAR = 21, 22, 23, 24, 26
EGO_VEHICLE, RECTIFICATION_BORDER = 1, 2  # both map to trainId 255 (ignore)

# Per labelId: mean RGB colour and noise standard deviation (grey levels).
_STYLE = {
    ROAD: ((84, 80, 102), 5.0),
    SIDEWALK: ((176, 146, 168), 7.0),
    BUILDING: ((152, 130, 108), 8.0),
    POLE: ((64, 66, 70), 3.0),
    SIGN: ((222, 196, 34), 6.0),
    VEGETATION: ((62, 116, 42), 10.0),
    TERRAIN: ((150, 168, 92), 9.0),
    SKY: ((128, 176, 228), 3.0),
    PERSON: ((196, 56, 72), 9.0),
    CAR: ((34, 44, 126), 7.0),
    EGO_VEHICLE: ((24, 24, 28), 2.0),
    RECTIFICATION_BORDER: ((0, 0, 0), 0.0),
}
_BASE = np.zeros((256, 3), np.float32)
_SIGMA = np.zeros(256, np.float32)
for _label_id, (_color, _sigma) in _STYLE.items():
    _BASE[_label_id] = _color
    _SIGMA[_label_id] = _sigma
_STYLED_IDS = np.array(sorted(_STYLE), dtype=np.int64)


class Scene(NamedTuple):
    image: np.ndarray  # h, w, 3 uint8 RGB
    label_ids: np.ndarray  # h, w uint8 Cityscapes labelIds
    instance_ids: np.ndarray  # h, w int32: labelId, or labelId * 1000 + k for cars and persons


def cityscapes_scene(rng: np.random.Generator, height: int = 128, width: int = 256) -> Scene:
    """One synthetic street scene with Cityscapes labelIds."""
    h, w = height, width
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    label = np.full((h, w), SKY, np.uint8)
    instances = np.zeros((h, w), np.int32)

    # Background: a skyline of building / vegetation blocks above the horizon.
    horizon = int(h * rng.uniform(0.42, 0.55))
    x0 = 0
    while x0 < w:
        x1 = min(w, x0 + int(rng.integers(max(4, w // 12), max(5, w // 4))))
        top = int(h * rng.uniform(0.08, 0.32))
        label[top:horizon, x0:x1] = BUILDING if rng.random() < 0.6 else VEGETATION
        x0 = x1

    # Ground: road in perspective, sidewalks on both sides, terrain beyond.
    centre = w * rng.uniform(0.4, 0.6)
    depth = np.clip((ys - horizon) / max(1, h - horizon), 0, 1)  # 0 at the horizon, 1 at the bottom
    half_road = 2 + depth * w * rng.uniform(0.3, 0.45)
    half_walk = half_road * rng.uniform(1.25, 1.5) + 2
    distance = np.abs(xs - centre)
    ground = np.broadcast_to(ys >= horizon, (h, w))
    label[ground] = TERRAIN
    label[ground & (distance < half_walk)] = SIDEWALK
    label[ground & (distance < half_road)] = ROAD

    # Poles with a traffic sign on the sidewalk edges.
    for _ in range(int(rng.integers(1, 4))):
        row = int(rng.integers(horizon + 2, max(horizon + 3, h - h // 5)))
        side = 1 if rng.random() < 0.5 else -1
        px = int(np.clip(centre + side * (half_road[row, 0] + 2), 1, w - 4))
        top = int(rng.integers(h // 10, max(h // 10 + 1, horizon - 4)))
        thickness = max(1, w // 128)
        label[top:row, px : px + thickness] = POLE
        if rng.random() < 0.8:
            size = max(3, h // 20)
            label[top : top + size, max(0, px - size // 2) : px + size // 2 + thickness] = SIGN

    # Cars on the road (rectangles with darker windows), persons on the sidewalks (ellipses).
    for k in range(int(rng.integers(1, 4))):
        bottom = int(rng.integers(horizon + 4, h - 2))
        scale = 0.15 + 0.85 * (bottom - horizon) / max(1, h - horizon)
        ch, cw = max(3, int(h * 0.22 * scale)), max(5, int(w * 0.2 * scale))
        cx = int(np.clip(centre + rng.uniform(-0.6, 0.6) * half_road[bottom, 0] - cw / 2, 0, w - cw))
        top = max(0, bottom - ch)
        label[top:bottom, cx : cx + cw] = CAR
        instances[top:bottom, cx : cx + cw] = CAR * 1000 + k
    for k in range(int(rng.integers(1, 4))):
        feet = int(rng.integers(horizon + 3, h - 2))
        scale = 0.2 + 0.8 * (feet - horizon) / max(1, h - horizon)
        ph, pw = max(4, int(h * 0.25 * scale)), max(2, int(h * 0.08 * scale))
        side = 1 if rng.random() < 0.5 else -1
        pcx = centre + side * (half_road[feet, 0] + (half_walk[feet, 0] - half_road[feet, 0]) / 2)
        pcy = feet - ph / 2
        inside = ((xs - pcx) / (pw / 2)) ** 2 + ((ys - pcy) / (ph / 2)) ** 2 <= 1.0
        label[inside] = PERSON
        instances[inside] = PERSON * 1000 + k

    # Ignored regions, as in the real data: the ego-vehicle bonnet and a rectification border.
    bonnet = h - max(3, h // 14) - (h // 20) * ((xs - w / 2) / (w / 2)) ** 2
    label[np.broadcast_to(ys >= bonnet, (h, w))] = EGO_VEHICLE
    border = max(1, w // 128)
    label[:, :border] = RECTIFICATION_BORDER
    label[:, w - border :] = RECTIFICATION_BORDER
    stuff = instances == 0
    instances[stuff] = label[stuff]

    # Appearance: class colour + per-image class jitter + class-specific noise and patterns.
    jitter = np.zeros((256, 3), np.float32)
    jitter[_STYLED_IDS] = rng.normal(0.0, 8.0, (len(_STYLED_IDS), 3))
    image = _BASE[label] + jitter[label]
    image += rng.standard_normal((h, w, 1), dtype=np.float32) * _SIGMA[label][..., None]
    sky = label == SKY
    gradient = np.broadcast_to(ys * (40.0 / max(1, horizon)), (h, w))  # brighter towards the horizon
    image[sky] += gradient[sky][:, None]
    windows = (label == BUILDING) & ((ys.astype(int) % 8) < 4) & ((xs.astype(int) % 7) < 3)
    image[windows] -= 35.0
    coarse = rng.standard_normal((h // 8 + 1, w // 8 + 1), dtype=np.float32)
    blobs = np.kron(coarse, np.ones((8, 8), np.float32))[:h, :w]
    image[label == VEGETATION, 1] += 22.0 * blobs[label == VEGETATION]
    marks = (label == ROAD) & (distance < 1 + depth * 2) & ((ys.astype(int) // 6) % 2 == 0)
    image[marks] += 110.0
    car_rows = (label == CAR) & (np.roll(label, 3, axis=0) != CAR)  # upper rows of each car
    image[car_rows] *= 0.55
    brightness = rng.uniform(-18.0, 18.0)
    contrast = rng.uniform(0.85, 1.15)
    image = (image - 128.0) * contrast + 128.0 + brightness
    return Scene(np.clip(image + 0.5, 0, 255).astype(np.uint8), label, instances)




def generate_cityscapes(
    root: str,
    num_train: int = 8,
    num_val: int = 4,
    size: Tuple[int, int] = (128, 256),
    cities: Sequence[str] = ("aachen", "bremen"),
    seed: int = 0,
    label_type: str = "labelIds",
    write_lists: bool = True,
) -> Dict[str, Any]:
    """Write a synthetic Cityscapes in the real layout and encodings under ``root``.

    Per sample ``<city>_<seq:06d>_000019`` (sequence numbers count per city; samples go round-robin
    over ``cities``, the same cities for every split):

    - ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png``: 8-bit RGB;
    - ``gtFine/<split>/<city>/<stem>_gtFine_color.png``: RGBA, Cityscapes colour of each labelId;
    - ``..._gtFine_instanceIds.png``: 16-bit, labelId or labelId*1000+k for cars and persons;
    - the id map(s) chosen by ``label_type``: "labelIds" -> ``_gtFine_labelIds.png`` (8-bit labelIds),
      "trainIds" -> ``_gtFine_trainIds.png`` (DANet 2019 lists), "labelTrainIds" ->
      ``_gtFine_labelTrainIds.png`` (PaddleSeg), "all" -> all three;
    - with ``write_lists``: DANet-2019-style ``train_fine.txt`` / ``val_fine.txt`` (tab-separated image
      and label paths relative to ``root``; the label is the trainIds file when one is written).

    Args:
        size: (height, width) of every image. Default (128, 256) (the real aspect ratio 1:2).
        seed: everything is a function of ``seed``: the same seed writes identical files.

    Returns a dict: ``root``, ``size``, ``label_type``, ``files`` (split -> list of dicts of written
    paths), ``lists`` (split -> list file path), ``seconds``.
    """
    kinds = {"labelIds": ("labelIds",), "trainIds": ("trainIds",), "labelTrainIds": ("labelTrainIds",),
             "all": ("labelIds", "trainIds", "labelTrainIds")}  # fmt: skip
    if label_type not in kinds:
        raise ValueError(f"label_type must be one of {sorted(kinds)}, got {label_type!r}")
    if not cities:
        raise ValueError("cities must name at least one city")
    height, width = int(size[0]), int(size[1])
    if height < 16 or width < 16:
        raise ValueError(f"size must be at least 16x16, got {size!r}")
    start = time.perf_counter()
    root = os.fspath(root)
    files: Dict[str, List[Dict[str, str]]] = {}
    lists: Dict[str, str] = {}
    for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        files[split] = []
        for index in range(count):
            city = cities[index % len(cities)]
            stem = f"{city}_{index // len(cities):06d}_000019"
            image_dir = os.path.join(root, "leftImg8bit", split, city)
            label_dir = os.path.join(root, "gtFine", split, city)
            os.makedirs(image_dir, exist_ok=True)
            os.makedirs(label_dir, exist_ok=True)
            scene = cityscapes_scene(np.random.default_rng((seed, split_index, index)), height, width)
            written = {"image": os.path.join(image_dir, f"{stem}_leftImg8bit.png")}
            save_png(scene.image, written["image"])
            color = np.concatenate(
                [LABEL_ID_COLORS[scene.label_ids], np.full((height, width, 1), 255, np.uint8)], axis=2
            )
            written["color"] = os.path.join(label_dir, f"{stem}_gtFine_color.png")
            save_png(color, written["color"])
            written["instanceIds"] = os.path.join(label_dir, f"{stem}_gtFine_instanceIds.png")
            save_png(scene.instance_ids.astype(np.uint16), written["instanceIds"])
            train_ids = LABEL_ID_TO_TRAIN_ID[scene.label_ids]
            for kind in kinds[label_type]:
                values = scene.label_ids if kind == "labelIds" else train_ids
                written[kind] = os.path.join(label_dir, f"{stem}_gtFine_{kind}.png")
                save_png(values, written[kind])
            files[split].append(written)
        if write_lists and count:
            key = next(k for k in ("trainIds", "labelTrainIds", "labelIds") if k in files[split][0])
            lists[split] = os.path.join(root, f"{split}_fine.txt")
            with open(lists[split], "w", encoding="utf-8") as handle:
                for written in files[split]:
                    image_rel = os.path.relpath(written["image"], root).replace(os.sep, "/")
                    label_rel = os.path.relpath(written[key], root).replace(os.sep, "/")
                    handle.write(f"{image_rel}\t{label_rel}\n")
    return {
        "root": root,
        "size": (height, width),
        "label_type": label_type,
        "files": files,
        "lists": lists,
        "seconds": time.perf_counter() - start,
    }


def _cityscapes_arguments(parser: Any) -> None:  # a parser or an argument group
    parser.add_argument("--num_train", type=int, default=8)
    parser.add_argument("--num_val", type=int, default=4)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label_type", default="labelIds", choices=["labelIds", "trainIds", "labelTrainIds", "all"]
    )
    parser.add_argument("--cities", nargs="+", default=["aachen", "bremen"])


def _cityscapes_run(args: argparse.Namespace) -> Dict[str, Any]:
    return generate_cityscapes(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        size=(args.height, args.width),
        cities=tuple(args.cities),
        seed=args.seed,
        label_type=args.label_type,
    )
