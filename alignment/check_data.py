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
import random
import tempfile
from pathlib import Path
from typing import Dict, List

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
    from data.cityscapes import CityscapesDataset
    from data.transforms import danet_train_transforms
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


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    from data.synthetic import generate_cityscapes

    if case.task != "segmentation":
        raise SystemExit(f"check_data: no data check defined for task '{case.task}' ({case.name})")
    image_size = CITYSCAPES_SIZES[args.size][0]
    with tempfile.TemporaryDirectory(prefix="align_data_") as tmp:
        root = generate_cityscapes(Path(tmp) / "cityscapes", num_train=2, num_val=2, size=image_size,
                                   seed=args.seed)["root"]
        torch_values, paddle_values, same_rng = cityscapes_samples(root, args.size)
    stem = result_stem(case.name, args.size, "float32")
    torch_info, paddle_info = save_reprod_pair(args.out, "data", stem, torch_values, paddle_values)
    rows = _exact_rows(torch_info, paddle_info)
    rows.append(Row("train.rng_state_after", 0.0 if same_rng else 1.0, 0.0, 0.0, 0.0, "identical", same_rng))
    return StepResult("data", case.name, args.size, "float32", rows,
                      notes=[f"synthetic Cityscapes {image_size[0]}x{image_size[1]} in the real layout "
                             f"(labelIds mapped on the fly); train: base {CITYSCAPES_SIZES[args.size][1]}, "
                             f"crop {CITYSCAPES_SIZES[args.size][2]}"])


def main(argv=None) -> int:
    return run_step("data", run_case, argv)


if __name__ == "__main__":
    raise SystemExit(main())
