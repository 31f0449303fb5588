"""Synthetic change-detection pairs: CDD (DASNet, DASNet-V2, LSNet) and LEVIR-CD in their real layouts."""

from __future__ import annotations

import argparse
import io
import os
import time
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image

from ._io import encode, save_png, write_bytes

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
    buildings: Tuple[int, int] = (4, 10),
    building_size: Tuple[float, float] = (1 / 14, 1 / 5),
    season_shift: bool = True,
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

    ``buildings`` / ``building_size`` / ``season_shift`` go to ``change_pair``: more or larger buildings give
    more changed area (the defaults give ~5 % changed pixels); without the season shift both times share a
    season (brightness, contrast and colour cast still differ), an easier task.

    Everything is a function of ``seed``. Returns a dict: ``root``, ``size``, ``label_format``, ``files``
    (split -> list of dicts of written paths), ``lists`` (split -> list file), ``changed_fraction``
    (split -> list), ``seasons`` (split -> list of (t0, t1)), ``otsu_thresholds`` (split -> list),
    ``seconds``.
    """
    if label_format not in ("jpg0255", "png01"):
        raise ValueError(f"label_format must be 'jpg0255' or 'png01', got {label_format!r}")
    if int(size) < 16:
        raise ValueError(f"size must be at least 16, got {size!r}")
    from ..cdd import otsu_binarize  # imports OpenCV lazily, only when OUT_binary is written

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
            pair = change_pair(np.random.default_rng((seed, 7, split_index, index)), size=int(size),
                               buildings=tuple(buildings), building_size=tuple(building_size),
                               season_shift=bool(season_shift))
            name = f"{index:05d}"
            written = {
                "t0": os.path.join(folders["A"], name + ".jpg"),
                "t1": os.path.join(folders["B"], name + ".jpg"),
                "label": os.path.join(folders["OUT"], name + label_ext),
            }
            write_bytes(written["t0"], encode(pair.t0, "JPEG"))
            write_bytes(written["t1"], encode(pair.t1, "JPEG"))
            if label_format == "jpg0255":
                data = encode(pair.change.astype(np.uint8) * 255, "JPEG", quality=75)
            else:
                data = encode(pair.change.astype(np.uint8), "PNG")
            write_bytes(written["label"], data)
            if with_binary:
                stored = np.array(Image.open(io.BytesIO(data)))  # the label as a reader will see it
                threshold, binary = otsu_binarize(stored)
                written["binary"] = os.path.join(folders["OUT_binary"], name + ".png")
                write_bytes(written["binary"], encode(binary, "PNG"))
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
            save_png(pair.t0, written["A"])
            save_png(pair.t1, written["B"])
            save_png(pair.change.astype(np.uint8) * 255, written["label"])
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
