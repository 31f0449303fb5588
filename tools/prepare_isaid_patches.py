"""Split iSAID images and colour masks into devkit-style patches (800 x 800, stride 600).

Usage::

    python tools/prepare_isaid_patches.py --root DATA/iSAID --out DATA/iSAID_patches --split train val
        [--patch 800] [--overlap 200] [--format color|ids] [--no-pad]

FactSeg itself does NOT use this: it trains on 896 / 512 windows cut on the fly from the full images
(``data/isaid.py``) and evaluates by sliding windows on the full images. This tool exists for the other
iSAID protocol, the devkit's (iSAID_Devkit ``preprocess/split.py``, as ported by mmsegmentation's
``tools/dataset_converters/isaid.py``) used by most later papers.

Devkit rule (``devkit_windows``): along each axis, starts ``0, s, 2s, ...`` below the side length with
``s = patch - overlap``; a patch that passes the border is shifted back to end at it; x is the outer
loop, y the inner; coinciding patches are written once. An image smaller than the patch is first
padded at the bottom/right to the patch size (image 0; masks: class 255 with ``--format ids``, white
with ``--format color``, which the FactSeg reader decodes as background and reports as an unknown
colour; ``--no-pad`` keeps such a side whole instead).

Output, in the layout ``data/isaid.py`` reads::

    <out>/<split>/images/P0000_<y0>_<y1>_<x0>_<x1>.png
    <out>/<split>/masks/P0000_<y0>_<y1>_<x0>_<x1>_instance_color_RGB.png   (--format color, default)
    <out>/<split>/masks/P0000_<y0>_<y1>_<x0>_<x1>_instance_ids.png         (--format ids: uint8 class ids)

Every file is written atomically (temporary file + rename). Input errors name the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from rsrepro.data.errors import DatasetError
from rsrepro.data.io import read_image
from rsrepro.data.isaid import find_isaid_pairs, read_isaid_mask
from rsrepro.fileio import atomic_save
from rsrepro.isaid import IGNORE_INDEX

Window = Tuple[int, int, int, int]  # y0, y1, x0, x1


def devkit_axis(size: int, patch: int, stride: int) -> List[int]:
    return [min(start, size - patch) for start in range(0, size, stride)] if size >= patch else [0]


def devkit_windows(height: int, width: int, patch: int = 800, overlap: int = 200) -> List[Window]:
    """Unique devkit patches of an image at least ``patch`` on each side, x outer, y inner."""
    stride = patch - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the patch {patch}")
    seen, out = set(), []
    for x0 in devkit_axis(width, patch, stride):
        for y0 in devkit_axis(height, patch, stride):
            window = (y0, y0 + min(patch, height), x0, x0 + min(patch, width))
            if window not in seen:
                seen.add(window)
                out.append(window)
    return out


def _save(array: np.ndarray, path: str) -> None:
    atomic_save(path, lambda tmp: Image.fromarray(array).save(str(tmp), format="PNG"))


def split_pair(image_path: str, mask_path: str, out_images: str, out_masks: str, patch: int, overlap: int,
               fmt: str, pad: bool) -> Dict[str, int]:
    image = read_image(image_path, convert=True)
    color = read_image(mask_path, convert=True)
    if color.shape != image.shape:
        raise DatasetError(f"mask {mask_path} is {color.shape[1]}x{color.shape[0]}, image {image_path} "
                           f"{image.shape[1]}x{image.shape[0]}")
    h, w = image.shape[:2]
    padded = pad and (h < patch or w < patch)
    if padded:
        ph, pw = max(h, patch), max(w, patch)
        canvas = np.zeros((ph, pw, 3), np.uint8)
        canvas[:h, :w] = image
        image = canvas
        mask_canvas = np.full((ph, pw, 3), 255, np.uint8)
        mask_canvas[:h, :w] = color
        color = mask_canvas
        h, w = ph, pw
    stem = os.path.splitext(os.path.basename(image_path))[0]
    ids = None
    if fmt == "ids":
        ids, _ = read_isaid_mask(mask_path, on_unknown="warn")
        if padded:
            full = np.full((h, w), IGNORE_INDEX, np.uint8)
            full[:ids.shape[0], :ids.shape[1]] = ids
            ids = full
    windows = devkit_windows(h, w, patch, overlap)
    for y0, y1, x0, x1 in windows:
        name = f"{stem}_{y0}_{y1}_{x0}_{x1}"
        _save(np.ascontiguousarray(image[y0:y1, x0:x1]), os.path.join(out_images, name + ".png"))
        if fmt == "ids":
            _save(np.ascontiguousarray(ids[y0:y1, x0:x1]), os.path.join(out_masks, name + "_instance_ids.png"))
        else:
            _save(np.ascontiguousarray(color[y0:y1, x0:x1]),
                  os.path.join(out_masks, name + "_instance_color_RGB.png"))
    return {"patches": len(windows), "padded": int(padded)}


def prepare(root: str, out: str, splits: Sequence[str], patch: int = 800, overlap: int = 200,
            fmt: str = "color", pad: bool = True) -> Dict[str, Dict[str, int]]:
    """Library entry point; returns per split {images, patches, padded}."""
    if fmt not in ("color", "ids"):
        raise ValueError(f"format must be 'color' or 'ids', got {fmt!r}")
    report: Dict[str, Dict[str, int]] = {}
    for split in splits:
        pairs = find_isaid_pairs(root, split)
        out_images = os.path.join(out, split, "images")
        out_masks = os.path.join(out, split, "masks")
        os.makedirs(out_images, exist_ok=True)
        os.makedirs(out_masks, exist_ok=True)
        totals = {"images": 0, "patches": 0, "padded": 0}
        for pair in pairs:
            counts = split_pair(pair.image, pair.mask, out_images, out_masks, patch, overlap, fmt, pad)
            totals["images"] += 1
            totals["patches"] += counts["patches"]
            totals["padded"] += counts["padded"]
        report[split] = totals
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="iSAID root with <split>/images and the masks")
    parser.add_argument("--out", required=True, help="output root")
    parser.add_argument("--split", nargs="+", default=["train", "val"])
    parser.add_argument("--patch", type=int, default=800)
    parser.add_argument("--overlap", type=int, default=200)
    parser.add_argument("--format", choices=["color", "ids"], default="color")
    parser.add_argument("--no-pad", action="store_true", help="keep a side shorter than the patch whole")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.root, args.out, args.split, args.patch, args.overlap, args.format, not args.no_pad)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, counts in report.items():
        print(f"{split}: {counts['images']} images -> {counts['patches']} patches "
              f"({counts['padded']} padded to {args.patch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
