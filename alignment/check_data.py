"""Steps 2 and 7: data loading (val) and training augmentation give the same samples.

Our framework-free pipeline (``data/``, what training and evaluation use) against the
official-style torch reference (``torch_ref/datasets/``), on a dataset generated on the fly in the
real on-disk layout: val samples as they are, and train samples with augmentation driven by
``random.Random`` generators seeded identically on both sides (same draws in the same order).
Bar: identical arrays (max|diff| == 0) and identical generator states afterwards.

    python -m alignment.check_data --model danet_r50 [--size full]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from .cases import AlignCase
from .harness import Row, StepResult, result_stem, run_step, save_reprod_pair

# size -> (image size, base_size, crop_size, train samples x seeds)
CITYSCAPES_SIZES = {"small": ((64, 128), 48, 56, 3), "full": ((1024, 2048), 1024, 768, 2)}


def _exact_rows(torch_info: Dict[str, np.ndarray], paddle_info: Dict[str, np.ndarray]) -> List[Row]:
    rows = []
    for name, ref in torch_info.items():
        test = paddle_info[name]
        same_shape = ref.shape == test.shape
        diff = np.abs(ref.astype(np.float64) - test.astype(np.float64)) if same_shape else np.array([np.inf])
        rows.append(Row(name, float(diff.max()), float(diff.mean()), float(np.abs(ref).max()),
                        float(np.abs(ref).mean()), "identical", bool(same_shape and diff.max() == 0)))
    return rows


def cityscapes_samples(root: str, size: str):
    from rsrepro.data.cityscapes import CityscapesDataset
    from rsrepro.data.transforms import danet_train_transforms
    from torch_ref.datasets import CityscapesSegmentation

    _, base, crop, seeds = CITYSCAPES_SIZES[size]
    ours_val = CityscapesDataset(root, "val")
    ref_val = CityscapesSegmentation(root, "val", mode="testval")
    ours_train = CityscapesDataset(root, "train", transform=danet_train_transforms(base_size=base, crop_size=crop))
    ref_train = CityscapesSegmentation(root, "train", base_size=base, crop_size=crop)
    torch_values: Dict[str, np.ndarray] = {}
    paddle_values: Dict[str, np.ndarray] = {}
    rng_states_equal = True
    for i in range(len(ours_val)):
        (image, label), (ref_image, ref_label) = ours_val[i], ref_val[i]
        paddle_values.update({f"val{i}.image": image, f"val{i}.label": label})
        torch_values.update({f"val{i}.image": ref_image.numpy(), f"val{i}.label": ref_label.numpy()})
    for i in range(len(ours_train)):
        for seed in range(seeds):
            ours_rng, ref_rng = random.Random(seed), random.Random(seed)
            image, label = ours_train.load(i, ours_rng)
            ref_image, ref_label = ref_train.load(i, ref_rng)
            rng_states_equal &= ours_rng.getstate() == ref_rng.getstate()
            paddle_values.update({f"train{i}.seed{seed}.image": image, f"train{i}.seed{seed}.label": label})
            torch_values.update({f"train{i}.seed{seed}.image": ref_image.numpy(),
                                 f"train{i}.seed{seed}.label": ref_label.numpy()})
    return torch_values, paddle_values, rng_states_equal


def cityscapes_check(tmp: Path, size: str, seed: int):
    from rsrepro.data.synthetic import generate_cityscapes

    image_size, base, crop, _ = CITYSCAPES_SIZES[size]
    root = generate_cityscapes(tmp / "cityscapes", num_train=2, num_val=2, size=image_size, seed=seed)["root"]
    torch_values, paddle_values, same_rng = cityscapes_samples(root, size)
    note = (f"synthetic Cityscapes {image_size[0]}x{image_size[1]} in the real layout (labelIds mapped on "
            f"the fly); train: base {base}, crop {crop}")
    return torch_values, paddle_values, same_rng, note


def cdd_dasnet_check(tmp: Path, size: str, seed: int):
    """DASNet path: list layout, BGR minus per-time means, JPEG 0/255 labels binarised at 128."""
    from rsrepro.data.cdd import CDDDataset
    from rsrepro.data.synthetic import generate_cdd
    from torch_ref.datasets.cdd import DASNetCDDReference

    root = generate_cdd(tmp / "cdd", num_train=0, num_val=3, num_test=0, size=256, seed=seed)["root"]
    ours = CDDDataset.dasnet(root, "val")
    ref = DASNetCDDReference(root, root, os.path.join(root, "val.txt"), label_rule="ge128")
    torch_values: Dict[str, np.ndarray] = {}
    paddle_values: Dict[str, np.ndarray] = {}
    for i in range(len(ours)):
        for name, a, b in zip(("t0", "t1", "label"), ours[i], ref[i][:3]):
            paddle_values[f"val{i}.{name}"] = a
            torch_values[f"val{i}.{name}"] = b.numpy()
    return torch_values, paddle_values, True, "synthetic CDD 256x256 (list layout, JPEG 0/255 labels)"


def cdd_lsnet_check(tmp: Path, size: str, seed: int):
    """LSNet path: folder layout, OUT_binary labels, raw 0-255 inputs, flips + rot90 augmentation."""
    from rsrepro.data.cdd import CDDDataset
    from rsrepro.data.synthetic import generate_cdd
    from torch_ref.datasets.cdd import LSNetCDDReference

    root = generate_cdd(tmp / "cdd", num_train=3, num_val=0, num_test=0, size=256, seed=seed)["root"]
    ours = CDDDataset.lsnet(root, "train", seed=seed)
    ref = LSNetCDDReference(root, "train", aug=True)
    torch_values: Dict[str, np.ndarray] = {}
    paddle_values: Dict[str, np.ndarray] = {}
    same_rng = True
    for epoch in range(2):
        ours.set_epoch(epoch)
        for i in range(len(ours)):
            ours_rng, ref_rng = ours.rng_for(i), ours.rng_for(i)
            sample = ours.load(i, ours_rng)
            r0, r1, mask, _ = ref.load(i, ref_rng)
            same_rng &= ours_rng.getstate() == ref_rng.getstate()
            for name, a, b in zip(("t0", "t1", "label"), sample, (r0, r1, mask.long())):
                paddle_values[f"epoch{epoch}.train{i}.{name}"] = a
                torch_values[f"epoch{epoch}.train{i}.{name}"] = b.numpy()
    return torch_values, paddle_values, same_rng, "synthetic CDD 256x256 (folder layout, OUT_binary, augmented)"


# size -> (image sizes (train..., val...), window, stride, seeds per train window)
ISAID_SIZES = {"small": ([(200, 300), (100, 260), (180, 150)], 128, 64, 2),
               "full": ([(1000, 1200), (700, 1000), (1000, 1200)], 896, 512, 2)}


def isaid_check(tmp: Path, size: str, seed: int):
    """FactSeg path: colour masks decoded by key, windows over full images, flips + rot90 + pad, 0-255
    normalisation; val images as the official evaluation reads them (uint8, decoded masks)."""
    from rsrepro.data.isaid import ISAIDDataset
    from rsrepro.data.synthetic import generate_isaid
    from torch_ref.datasets.isaid import ISAIDFolderReference, ISAIDPatchReference

    sizes, window, stride, seeds = ISAID_SIZES[size]
    root = generate_isaid(tmp / "isaid", num_train=len(sizes) - 1, num_val=1, sizes=sizes, seed=seed,
                          num_objects=(6, 12) if size == "small" else (24, 48))["root"]
    torch_values: Dict[str, np.ndarray] = {}
    paddle_values: Dict[str, np.ndarray] = {}
    ours_val = ISAIDDataset(root, "val", raw=True)
    ref_val = ISAIDFolderReference(os.path.join(root, "val", "images"), os.path.join(root, "val", "masks"))
    for i in range(len(ours_val)):
        (image, label), (ref_image, ref_label, _) = ours_val[i], ref_val[i]
        paddle_values.update({f"val{i}.image": image, f"val{i}.label": label})
        torch_values.update({f"val{i}.image": ref_image, f"val{i}.label": ref_label})
    ours = ISAIDDataset(root, "train", window=window, stride=stride)
    ref = ISAIDPatchReference(os.path.join(root, "train", "images"), os.path.join(root, "train", "masks"),
                              window, stride)
    same_rng = len(ours) == len(ref)
    for i in range(min(len(ours), len(ref))):
        for s in range(seeds):
            ours_rng, ref_rng = random.Random(f"{seed}:{s}"), random.Random(f"{seed}:{s}")
            image, label = ours.load(i, ours_rng)
            ref_image, ref_label = ref.load(i, ref_rng)
            same_rng &= ours_rng.getstate() == ref_rng.getstate()
            paddle_values.update({f"train{i}.seed{s}.image": image, f"train{i}.seed{s}.label": label})
            torch_values.update({f"train{i}.seed{s}.image": ref_image.numpy(),
                                 f"train{i}.seed{s}.label": ref_label.numpy().astype(np.int64)})
    note = (f"synthetic iSAID {sizes} in the real layout (colour masks); train windows {window}/{stride} "
            f"({len(ours)} windows; ours {len(ours)} vs official {len(ref)}), {seeds} augmentation seeds each")
    return torch_values, paddle_values, same_rng, note


# dataset name -> fn(tmp_dir, size, seed) -> (torch values, our values, same rng state, note)
DATA_CHECKS: Dict[str, Callable] = {
    "cityscapes": cityscapes_check,
    "cdd_dasnet": cdd_dasnet_check,
    "cdd_lsnet": cdd_lsnet_check,
    "isaid": isaid_check,
}


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    if case.dataset not in DATA_CHECKS:
        raise SystemExit(f"check_data: no data check for dataset '{case.dataset}' ({case.name}); "
                         f"known: {sorted(DATA_CHECKS)}")
    with tempfile.TemporaryDirectory(prefix="align_data_") as tmp:
        torch_values, paddle_values, same_rng, note = DATA_CHECKS[case.dataset](Path(tmp), args.size, args.seed)
    stem = result_stem(case.name, args.size, "float32")
    torch_info, paddle_info = save_reprod_pair(args.out, "data", stem, torch_values, paddle_values)
    rows = _exact_rows(torch_info, paddle_info)
    rows.append(Row("rng_state_after", 0.0 if same_rng else 1.0, 0.0, 0.0, 0.0, "identical", same_rng))
    return StepResult("data", case.name, args.size, "float32", rows, notes=[note])


def main(argv=None) -> int:
    return run_step("data", run_case, argv)


if __name__ == "__main__":
    raise SystemExit(main())
