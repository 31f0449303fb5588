"""Small synthetic datasets written in the real layouts and encodings, for tests and demos.

None of the real datasets can be downloaded on these machines, so every test and demo runs on data
made here. The images are learnable, not noise: each is a street scene built from regions (sky,
buildings, vegetation, road with lane marks, sidewalks, terrain, poles with signs, cars, persons, the
ego-vehicle bonnet and a rectification border), and each class has its own colour and texture, jittered
per image, so a small segmentation network can fit it.

Command line (one entry per dataset; add yours to ``DATASETS``)::

    python -m rsrepro.data.synthetic --dataset cityscapes --out DIR [--num_train 8] [--num_val 4]
        [--height 128] [--width 256] [--seed 0] [--label_type labelIds] [--cities aachen bremen]
    python -m rsrepro.data.synthetic --dataset cdd --out DIR [--num_train 8] [--num_val 4] [--num_test 4]
        [--size 256] [--seed 0] [--label_format jpg0255|png01] [--no_binary] [--no_lists]
    python -m rsrepro.data.synthetic --dataset levir --out DIR [--num_train 4] [--num_val 2] [--num_test 2]
        [--size 1024] [--seed 0]
    python -m rsrepro.data.synthetic --dataset isaid --out DIR [--num_train 2] [--num_val 2] [--height 1000]
        [--width 1200] [--min_objects 24] [--max_objects 48] [--unknown_pixels 0] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image

from .cityscapes import LABEL_ID_COLORS, LABEL_ID_TO_TRAIN_ID

__all__ = [
    "generate_cityscapes",
    "cityscapes_scene",
    "generate_cdd",
    "generate_levir",
    "change_pair",
    "generate_isaid",
    "isaid_scene",
    "DATASETS",
    "main",
]

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


def _save_png(array: np.ndarray, path: str) -> None:
    # uint8 HxW -> 8-bit gray, HxWx3 -> RGB, HxWx4 -> RGBA, uint16 HxW -> 16-bit gray.
    Image.fromarray(array).save(path, compress_level=1)


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
            _save_png(scene.image, written["image"])
            color = np.concatenate(
                [LABEL_ID_COLORS[scene.label_ids], np.full((height, width, 1), 255, np.uint8)], axis=2
            )
            written["color"] = os.path.join(label_dir, f"{stem}_gtFine_color.png")
            _save_png(color, written["color"])
            written["instanceIds"] = os.path.join(label_dir, f"{stem}_gtFine_instanceIds.png")
            _save_png(scene.instance_ids.astype(np.uint16), written["instanceIds"])
            train_ids = LABEL_ID_TO_TRAIN_ID[scene.label_ids]
            for kind in kinds[label_type]:
                values = scene.label_ids if kind == "labelIds" else train_ids
                written[kind] = os.path.join(label_dir, f"{stem}_gtFine_{kind}.png")
                _save_png(values, written[kind])
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


# name -> (add dataset-specific arguments, generate from the parsed arguments and return a summary dict)
AddArguments = Callable[[Any], None]
Generate = Callable[[argparse.Namespace], Dict[str, Any]]
DATASETS: Dict[str, Tuple[AddArguments, Generate]] = {
    "cityscapes": (_cityscapes_arguments, _cityscapes_run),
}


# --------------------------------------------------------------------------------------------------
# Change detection: CDD (DASNet, DASNet-V2, LSNet) and LEVIR-CD
# --------------------------------------------------------------------------------------------------

# Terrain classes: they never change between the times, only their seasonal look does.
GRASS, SOIL, WATER = 1, 2, 3
SEASONS = ("summer", "autumn", "winter")
_TERRAIN_RGB = {
    GRASS: {"summer": (62, 112, 44), "autumn": (138, 100, 52), "winter": (226, 229, 236)},
    SOIL: {"summer": (152, 126, 92), "autumn": (126, 98, 70), "winter": (212, 213, 222)},
    WATER: {"summer": (42, 72, 112), "autumn": (46, 68, 96), "winter": (160, 176, 194)},
}
_ROAD_RGB = (112, 112, 118)
_ROOF_RGB = ((168, 64, 52), (136, 136, 142), (72, 92, 140), (196, 178, 146), (92, 60, 48))
_CAR_RGB = ((222, 222, 226), (30, 30, 36), (200, 40, 40), (40, 70, 180), (230, 200, 60))


class ChangePair(NamedTuple):
    t0: np.ndarray  # h, w, 3 uint8 RGB
    t1: np.ndarray  # h, w, 3 uint8 RGB
    change: np.ndarray  # h, w bool: an object appeared, vanished or was replaced
    seasons: Tuple[str, str]


def _free(ids: Sequence[np.ndarray], box: Tuple[int, int, int, int]) -> bool:
    y0, y1, x0, x1 = box
    return not any(a[y0:y1, x0:x1].any() for a in ids)


def change_pair(
    rng: np.random.Generator,
    size: int = 256,
    buildings: Tuple[int, int] = (4, 10),
    building_size: Tuple[float, float] = (1 / 14, 1 / 5),
    cars: Tuple[int, int] = (2, 8),
    season_shift: bool = True,
) -> ChangePair:
    """One synthetic aerial image pair and its change mask.

    Both times share the terrain (grass, bare soil, water) and the roads; buildings appear (t1 only),
    vanish (t0 only), are replaced (another roof and footprint) or stay; cars come and go on the roads;
    sometimes a new road is built. The change mask is exactly where the object at a pixel differs
    between the times. Each time gets its own season (grass green / brown / snow-white, roofs half
    snow-covered in winter), brightness, contrast and colour cast, none of which counts as change.

    Args:
        buildings: (min, max) number of buildings (max exclusive). building_size: side range as a
            fraction of ``size``. cars: (min, max) number of cars. season_shift: different seasons.
    """
    s = int(size)
    terrain = np.full((s, s), GRASS, np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        y0, x0 = (int(v) for v in rng.integers(0, s, 2))
        h, w = (int(v) for v in rng.integers(max(2, s // 8), max(3, s // 2), 2))
        terrain[y0 : y0 + h, x0 : x0 + w] = SOIL
    if rng.random() < 0.4:
        cy, cx = (float(v) for v in rng.uniform(0, s, 2))
        ry, rx = (float(v) for v in rng.uniform(s / 12, s / 5, 2))
        yy, xx = np.ogrid[:s, :s]
        terrain[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = WATER

    ids = [np.zeros((s, s), np.int32), np.zeros((s, s), np.int32)]  # object id per time, 0 = terrain
    colors: List[Tuple[int, int, int]] = [(0, 0, 0)]
    roofs: List[bool] = [False]
    shared_roads: List[Tuple[str, int, int]] = []

    def new_object(rgb: Sequence[float], roof: bool = False) -> int:
        colors.append(tuple(int(np.clip(c + rng.normal(0, 8), 0, 255)) for c in rgb))
        roofs.append(roof)
        return len(colors) - 1

    def road_box(axis: str, pos: int, width: int) -> Tuple[int, int, int, int]:
        return (pos, pos + width, 0, s) if axis == "h" else (0, s, pos, pos + width)

    road = new_object(_ROAD_RGB)  # one id for all roads: where a new road meets an old one, nothing changed
    for number in range(int(rng.integers(1, 3)) + (1 if rng.random() < 0.35 else 0)):
        axis = "h" if rng.random() < 0.5 else "v"
        width = int(rng.integers(max(2, s // 28), max(3, s // 16)))
        pos = int(rng.integers(0, s - width))
        y0, y1, x0, x1 = road_box(axis, pos, width)
        times = (0, 1) if number < 1 or rng.random() < 0.7 else (1,)  # the first road always exists
        for t in times:
            ids[t][y0:y1, x0:x1] = road
        if times == (0, 1):
            shared_roads.append((axis, pos, width))

    lo, hi = max(3, int(s * building_size[0])), max(4, int(s * building_size[1]))
    for _ in range(int(rng.integers(*buildings))):
        for _attempt in range(30):
            h, w = (int(v) for v in rng.integers(lo, hi, 2))
            y0, x0 = int(rng.integers(0, s - h)), int(rng.integers(0, s - w))
            box = (y0, y0 + h, x0, x0 + w)
            if _free(ids, box):
                break
        else:
            continue
        fate = rng.random()
        first = new_object(_ROOF_RGB[int(rng.integers(len(_ROOF_RGB)))], roof=True)
        if fate < 0.5:  # stays
            for t in (0, 1):
                ids[t][box[0] : box[1], box[2] : box[3]] = first
        elif fate < 0.7:  # appears
            ids[1][box[0] : box[1], box[2] : box[3]] = first
        elif fate < 0.85:  # vanishes
            ids[0][box[0] : box[1], box[2] : box[3]] = first
        else:  # replaced: another roof on a grown or shrunk footprint
            ids[0][box[0] : box[1], box[2] : box[3]] = first
            second = new_object(_ROOF_RGB[int(rng.integers(len(_ROOF_RGB)))], roof=True)
            dh, dw = (int(v) for v in rng.integers(-h // 3, h // 3 + 1, 2))
            y1, x1 = int(np.clip(box[1] + dh, y0 + 2, s)), int(np.clip(box[3] + dw, x0 + 2, s))
            ids[1][y0:y1, x0:x1] = second

    for _ in range(int(rng.integers(*cars)) if shared_roads else 0):
        axis, pos, width = shared_roads[int(rng.integers(len(shared_roads)))]
        length, breadth = max(3, s // 20), max(2, min(width - 1, s // 40))
        along = int(rng.integers(0, s - length))
        across = pos + int(rng.integers(0, max(1, width - breadth)))
        box = (across, across + breadth, along, along + length) if axis == "h" else \
            (along, along + length, across, across + breadth)  # fmt: skip
        oid = new_object(_CAR_RGB[int(rng.integers(len(_CAR_RGB)))])
        fate = rng.random()
        for t in ((0, 1) if fate < 0.3 else (0,) if fate < 0.65 else (1,)):
            ids[t][box[0] : box[1], box[2] : box[3]] = oid

    if season_shift:
        first_season = SEASONS[int(rng.integers(3))]
        others = [x for x in SEASONS if x != first_season]
        seasons = (first_season, others[int(rng.integers(2))] if rng.random() < 0.85 else first_season)
    else:
        seasons = ("summer", "summer")
    color_table = np.array(colors, np.float32)
    roof_table = np.array(roofs, bool)
    coarse = rng.standard_normal((s // 8 + 1, s // 8 + 1), dtype=np.float32)
    blobs = np.kron(coarse, np.ones((8, 8), np.float32))[:s, :s]  # vegetation / field texture
    images = []
    for t, season in enumerate(seasons):
        terrain_rgb = np.zeros((4, 3), np.float32)
        for cls, table in _TERRAIN_RGB.items():
            terrain_rgb[cls] = table[season]
        image = terrain_rgb[terrain]
        texture = 4.0 if season == "winter" else 12.0
        image += (blobs * texture)[..., None] * np.array([0.6, 1.0, 0.4], np.float32)
        obj = ids[t] > 0
        image[obj] = color_table[ids[t][obj]]
        roof = roof_table[ids[t]]
        if season == "winter":
            image[roof] = 0.5 * image[roof] + 0.5 * np.float32(235.0)
        # a darker lower-right rim on every object: a shading cue that moves with the object
        rim = obj & ((np.roll(ids[t], -1, axis=0) != ids[t]) | (np.roll(ids[t], -1, axis=1) != ids[t]))
        image[rim] *= 0.65
        image += rng.normal(0.0, 4.0, (s, s, 3)).astype(np.float32)
        cast = rng.normal(0.0, 6.0, 3).astype(np.float32)
        contrast, brightness = np.float32(rng.uniform(0.88, 1.12)), np.float32(rng.uniform(-14, 14))
        image = (image - 128.0) * contrast + 128.0 + brightness
        images.append(np.clip(image + cast + 0.5, 0, 255).astype(np.uint8))
    return ChangePair(images[0], images[1], ids[0] != ids[1], seasons)


def _encode(array: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    else:
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def generate_cdd(
    root: str,
    num_train: int = 8,
    num_val: int = 4,
    size: int = 256,
    seed: int = 0,
    label_format: str = "jpg0255",
    with_binary: bool = True,
    with_lists: bool = True,
    num_test: int = 4,
) -> Dict[str, Any]:
    """Write a synthetic CDD (Lebedev et al. "Real/subset") in the real layout under ``root``.

    Per split (train, val, test) and sample ``xxxxx`` (5 digits from 00000):

    - ``<split>/A/xxxxx.jpg``, ``<split>/B/xxxxx.jpg``: RGB JPEG (quality 90), the t0 / t1 images of
      ``change_pair`` (objects appear, vanish or change; the season shift does not count as change);
    - ``label_format="jpg0255"`` (the real CDD): ``<split>/OUT/xxxxx.jpg``, 1-channel JPEG (quality 75) of
      the change mask as 0/255, so the values carry JPEG noise; ``"png01"``: ``<split>/OUT/xxxxx.png``,
      1-channel PNG with 0/1 (a DASNet-V2-style converted label, without its JPEG noise);
    - with ``with_binary``: ``<split>/OUT_binary/xxxxx.png`` (0/255), the Otsu threshold (OpenCV, as
      ``tools/prepare_cdd_binary.py`` and the official LSNet tool) of the OUT file as written;
    - with ``with_lists``: ``train.txt``, ``val.txt``, ``test.txt`` with ``A B OUT`` paths per line
      (relative to ``root``, one space between them), in sample order.

    Everything is a function of ``seed``. Returns a dict: ``root``, ``size``, ``label_format``, ``files``
    (split -> list of dicts of written paths), ``lists`` (split -> list file), ``changed_fraction``
    (split -> list), ``seasons`` (split -> list of (t0, t1)), ``otsu_thresholds`` (split -> list),
    ``seconds``.
    """
    if label_format not in ("jpg0255", "png01"):
        raise ValueError(f"label_format must be 'jpg0255' or 'png01', got {label_format!r}")
    if int(size) < 16:
        raise ValueError(f"size must be at least 16, got {size!r}")
    from .cdd import otsu_binarize  # imports OpenCV lazily, only when OUT_binary is written

    start = time.perf_counter()
    root = os.fspath(root)
    summary: Dict[str, Any] = {"root": root, "size": int(size), "label_format": label_format}
    for key in ("files", "lists", "changed_fraction", "seasons", "otsu_thresholds"):
        summary[key] = {}
    label_ext = ".jpg" if label_format == "jpg0255" else ".png"
    splits = (("train", num_train), ("val", num_val), ("test", num_test))
    for split_index, (split, count) in enumerate(splits):
        if count <= 0:
            continue
        folders = {key: os.path.join(root, split, key) for key in ("A", "B", "OUT")}
        if with_binary:
            folders["OUT_binary"] = os.path.join(root, split, "OUT_binary")
        for folder in folders.values():
            os.makedirs(folder, exist_ok=True)
        for key in ("files", "changed_fraction", "seasons", "otsu_thresholds"):
            summary[key][split] = []
        for index in range(count):
            pair = change_pair(np.random.default_rng((seed, 7, split_index, index)), size=int(size))
            name = f"{index:05d}"
            written = {
                "t0": os.path.join(folders["A"], name + ".jpg"),
                "t1": os.path.join(folders["B"], name + ".jpg"),
                "label": os.path.join(folders["OUT"], name + label_ext),
            }
            _write(written["t0"], _encode(pair.t0, "JPEG"))
            _write(written["t1"], _encode(pair.t1, "JPEG"))
            if label_format == "jpg0255":
                data = _encode(pair.change.astype(np.uint8) * 255, "JPEG", quality=75)
            else:
                data = _encode(pair.change.astype(np.uint8), "PNG")
            _write(written["label"], data)
            if with_binary:
                stored = np.array(Image.open(io.BytesIO(data)))  # the label as a reader will see it
                threshold, binary = otsu_binarize(stored)
                written["binary"] = os.path.join(folders["OUT_binary"], name + ".png")
                _write(written["binary"], _encode(binary, "PNG"))
                summary["otsu_thresholds"][split].append(threshold)
            summary["files"][split].append(written)
            summary["changed_fraction"][split].append(float(pair.change.mean()))
            summary["seasons"][split].append(pair.seasons)
        if with_lists:
            summary["lists"][split] = os.path.join(root, f"{split}.txt")
            with open(summary["lists"][split], "w", encoding="utf-8") as handle:
                for written in summary["files"][split]:
                    rel = [os.path.relpath(written[k], root) for k in ("t0", "t1", "label")]
                    handle.write(" ".join(r.replace(os.sep, "/") for r in rel) + "\n")
    summary["seconds"] = time.perf_counter() - start
    return summary


def generate_levir(
    root: str,
    num_train: int = 4,
    num_val: int = 2,
    num_test: int = 2,
    size: int = 1024,
    seed: int = 0,
) -> Dict[str, Any]:
    """Write a synthetic LEVIR-CD in the real layout: ``<split>/{A,B,label}/<split>_<n>.png`` (n from 1).

    A / B: 8-bit RGB PNG; label: 1-channel PNG with 0/255. The real images are 1024x1024 (default);
    building-dense scenes (about ``size / 32`` to ``size / 16`` buildings). Returns a dict like
    ``generate_cdd`` (``root``, ``size``, ``files``, ``changed_fraction``, ``seconds``).
    """
    if int(size) < 16:
        raise ValueError(f"size must be at least 16, got {size!r}")
    start = time.perf_counter()
    root = os.fspath(root)
    s = int(size)
    summary: Dict[str, Any] = {"root": root, "size": s, "files": {}, "changed_fraction": {}}
    splits = (("train", num_train), ("val", num_val), ("test", num_test))
    for split_index, (split, count) in enumerate(splits):
        if count <= 0:
            continue
        folders = {key: os.path.join(root, split, key) for key in ("A", "B", "label")}
        for folder in folders.values():
            os.makedirs(folder, exist_ok=True)
        summary["files"][split] = []
        summary["changed_fraction"][split] = []
        for index in range(count):
            rng = np.random.default_rng((seed, 11, split_index, index))
            pair = change_pair(rng, size=s, buildings=(max(2, s // 32), max(3, s // 16)),
                               building_size=(1 / 40, 1 / 14), cars=(s // 64, s // 16 + 1))  # fmt: skip
            name = f"{split}_{index + 1}.png"
            written = {key: os.path.join(folders[key], name) for key in ("A", "B", "label")}
            _save_png(pair.t0, written["A"])
            _save_png(pair.t1, written["B"])
            _save_png(pair.change.astype(np.uint8) * 255, written["label"])
            summary["files"][split].append(dict(t0=written["A"], t1=written["B"], label=written["label"]))
            summary["changed_fraction"][split].append(float(pair.change.mean()))
    summary["seconds"] = time.perf_counter() - start
    return summary


def _cdd_arguments(parser: Any) -> None:
    parser.add_argument("--num_train", type=int, default=8)
    parser.add_argument("--num_val", type=int, default=4)
    parser.add_argument("--num_test", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label_format", default="jpg0255", choices=["jpg0255", "png01"])
    parser.add_argument("--no_binary", action="store_true", help="do not write OUT_binary/*.png")
    parser.add_argument("--no_lists", action="store_true", help="do not write train/val/test.txt")


def _cdd_run(args: argparse.Namespace) -> Dict[str, Any]:
    return generate_cdd(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        size=args.size,
        seed=args.seed,
        label_format=args.label_format,
        with_binary=not args.no_binary,
        with_lists=not args.no_lists,
    )


def _levir_arguments(parser: Any) -> None:
    parser.add_argument("--num_train", type=int, default=4)
    parser.add_argument("--num_val", type=int, default=2)
    parser.add_argument("--num_test", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)


def _levir_run(args: argparse.Namespace) -> Dict[str, Any]:
    return generate_levir(args.out, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test,
                          size=args.size, seed=args.seed)  # fmt: skip


DATASETS["cdd"] = (_cdd_arguments, _cdd_run)
DATASETS["levir"] = (_levir_arguments, _levir_run)


# --------------------------------------------------------------------------------------------------
# iSAID (FactSeg): large aerial scenes with small objects, colour masks in the real layout
# --------------------------------------------------------------------------------------------------

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
    from rsrepro.isaid import encode_color_mask

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
            _save_png(scene.image, written["image"])
            _save_png(color, written["mask"])
            ids = scene.instances
            _save_png(np.stack([ids % 256, (ids // 256) % 256, np.zeros_like(ids)], axis=2).astype(np.uint8),
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


DATASETS["isaid"] = (_isaid_arguments, _isaid_run)


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    """``python -m rsrepro.data.synthetic --dataset NAME --out DIR [dataset options]``."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--dataset", choices=sorted(DATASETS))
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog="python -m rsrepro.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="dataset layout to write")
    parser.add_argument("--out", required=True, help="output root folder")
    if known.dataset:
        DATASETS[known.dataset][0](parser.add_argument_group(f"{known.dataset} options"))
    args = parser.parse_args(argv)
    summary = DATASETS[args.dataset][1](args)
    counts = ", ".join(f"{split}: {len(items)}" for split, items in summary.get("files", {}).items())
    print(f"wrote synthetic {args.dataset} to {args.out} ({counts}) in {summary.get('seconds', 0):.2f} s")
    return summary


if __name__ == "__main__":
    main()
