"""Write CDD ``OUT_binary/*.png`` labels (0/255) by Otsu thresholding of ``OUT/*.jpg``, as LSNet trains on.

Usage::

    python tools/prepare_cdd_binary.py --root DATA/Real/subset --split train val test
        [--method cv2|skimage] [--compare] [--label-dir OUT] [--out-dir OUT_binary] [--allow-rgb]
        [--summary summary.json]

The official LSNet tool (qaz670756/LSNet ``utils/label_process.py``) runs, per file of ``<split>/OUT``,
``cv2.threshold(cv2.imread(path)[:, :, 0], 0, 255, cv2.THRESH_OTSU)`` and writes
``<split>/OUT_binary/<name with jpg -> png>``. This tool does the same with ``--method cv2`` (default):
the SAME threshold per image (Otsu on that image's 256-bin histogram, changed = value > threshold).
``--method skimage`` uses ``skimage.filters.threshold_otsu`` instead; ``--compare`` runs both and counts
files whose thresholds / maps differ. Known difference: a constant non-zero label (everything changed)
is all 255 with cv2 and all 0 with skimage; otherwise they differ at most in where a tie inside a run of
empty histogram bins is broken, which moves the reported threshold but not the map.

Differences from the official tool: files are read with the package's checked reader (Pillow decodes the
same pixels as OpenCV: both use libjpeg-turbo; checked on the synthetic data), so a missing, empty,
truncated or unreadable label is reported by name (OpenCV's ``imread`` returns None and the official
tool crashes on ``None[:, :, 0]``); 3-channel labels are refused unless ``--allow-rgb`` (then the blue
channel is used, as the official ``[:, :, 0]`` of BGR); each PNG is written atomically (temporary file +
rename), so an interrupted run leaves no half-written label; listing is sorted, hidden files skipped.

Report per split: number of labels, thresholds min / median / max, blank (all-zero) labels, and the
labels / pixels where the Otsu map differs from the fixed ``>= 128`` rule of DASNet-V2 (Otsu picks one
threshold per image; on JPEG labels it usually lands in the empty part of the histogram between the
noise of the two classes, where both rules agree, but a label with mid values can differ).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Sequence

import numpy as np
from PIL import Image

from rsrepro.data.cdd import IMAGE_EXTENSIONS, otsu_binarize
from rsrepro.data.errors import DatasetError
from rsrepro.data.io import read_mask
from rsrepro.fileio import atomic_save, atomic_write_json


def _label_files(folder: str) -> List[str]:
    return [
        name
        for name in sorted(os.listdir(folder))
        if not name.startswith(".")
        and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        and os.path.isfile(os.path.join(folder, name))
    ]


def _write_png(path: str, binary: np.ndarray) -> None:
    atomic_save(path, lambda tmp: Image.fromarray(binary).save(tmp, format="PNG"))


def prepare_split(
    root: str,
    split: str,
    method: str = "cv2",
    label_dir: str = "OUT",
    out_dir: str = "OUT_binary",
    allow_rgb: bool = False,
    compare: bool = False,
) -> Dict[str, Any]:
    """Binarise every label of ``<root>/<split>/<label_dir>`` into ``<root>/<split>/<out_dir>``.

    Returns the split's report (see the module docstring). Bad files are skipped and listed under
    ``"errors"``; the caller decides whether that is fatal (``main`` exits non-zero).
    """
    source = os.path.join(root, split, label_dir)
    if not os.path.isdir(source):
        raise DatasetError(f"label folder for split '{split}' not found: {source}")
    names = _label_files(source)
    if not names:
        raise DatasetError(f"no label images in {source} (empty split)")
    target = os.path.join(root, split, out_dir)
    other = "skimage" if method == "cv2" else "cv2"
    thresholds: List[float] = []
    errors: List[str] = []
    blank = disagree_files = disagree = pixels = 0
    method_diff_files = method_diff_thresholds = method_diff_pixels = 0
    for name in names:
        path = os.path.join(source, name)
        try:
            gray = read_mask(path, allow_rgb=allow_rgb)
        except DatasetError as exc:
            errors.append(str(exc))
            continue
        threshold, binary = otsu_binarize(gray, method)
        _write_png(os.path.join(target, os.path.splitext(name)[0] + ".png"), binary)
        thresholds.append(threshold)
        blank += int(gray.max() == 0)
        differ = int(((binary > 0) != (gray >= 128)).sum())
        disagree_files += int(differ > 0)
        disagree += differ
        pixels += gray.size
        if compare:
            other_threshold, other_binary = otsu_binarize(gray, other)
            differing = int((other_binary != binary).sum())
            method_diff_thresholds += int(other_threshold != threshold)
            method_diff_files += int(differing > 0)
            method_diff_pixels += differing
    report: Dict[str, Any] = {
        "split": split,
        "source": source,
        "target": target,
        "method": method,
        "labels": len(thresholds),
        "threshold_min": float(np.min(thresholds)) if thresholds else None,
        "threshold_median": float(np.median(thresholds)) if thresholds else None,
        "threshold_max": float(np.max(thresholds)) if thresholds else None,
        "blank_labels": blank,
        "labels_otsu_vs_ge128_differ": disagree_files,
        "pixels_otsu_vs_ge128_differ": disagree,
        "pixels": pixels,
        "errors": errors,
    }
    if compare:
        report[f"compare_{other}"] = {
            "files_with_other_threshold": method_diff_thresholds,
            "files_with_other_map": method_diff_files,
            "pixels_differ": method_diff_pixels,
        }
    return report


def _describe(report: Dict[str, Any]) -> str:
    text = (
        f"{report['split']}: {report['labels']} labels -> {report['target']} ({report['method']} Otsu); "
        f"thresholds min {report['threshold_min']:g} / median {report['threshold_median']:g} / max "
        f"{report['threshold_max']:g}; {report['blank_labels']} blank; "
        f"Otsu vs >= 128 differ in {report['labels_otsu_vs_ge128_differ']} label(s), "
        f"{report['pixels_otsu_vs_ge128_differ']} of {report['pixels']} pixels"
    )
    for key, value in report.items():
        if key.startswith("compare_"):
            text += (
                f"; vs {key[8:]}: {value['files_with_other_threshold']} file(s) with another threshold, "
                f"{value['files_with_other_map']} with another map ({value['pixels_differ']} pixels)"
            )
    if report["errors"]:
        text += f"; {len(report['errors'])} unreadable label(s) skipped"
    return text


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    """Run the tool; returns ``{"splits": [report, ...]}``. Raises DatasetError if any label was bad."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="CDD root holding <split>/OUT (e.g. Real/subset)")
    parser.add_argument("--split", nargs="+", default=["train", "val", "test"])
    parser.add_argument("--method", choices=["cv2", "skimage"], default="cv2",
                        help="Otsu implementation (cv2 = the official LSNet tool)")  # fmt: skip
    parser.add_argument(
        "--compare", action="store_true", help="also run the other method and count differences"
    )
    parser.add_argument("--label-dir", default="OUT")
    parser.add_argument("--out-dir", default="OUT_binary")
    parser.add_argument(
        "--allow-rgb", action="store_true", help="accept 3-channel labels (blue channel used)"
    )
    parser.add_argument("--summary", help="also write the reports to this JSON file")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        raise DatasetError(f"CDD root folder not found: {args.root}")
    reports = []
    for split in args.split:
        report = prepare_split(args.root, split, args.method, args.label_dir, args.out_dir, args.allow_rgb,
                               args.compare)  # fmt: skip
        print(_describe(report))
        reports.append(report)
    summary = {"splits": reports}
    if args.summary:
        atomic_write_json(args.summary, summary)
    errors = [e for r in reports for e in r["errors"]]
    if errors:
        raise DatasetError(
            f"{len(errors)} label file(s) could not be read and were skipped; first: {errors[0]}"
        )
    return summary


if __name__ == "__main__":
    try:
        main()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
