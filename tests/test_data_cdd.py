"""CDD / LEVIR-CD change-detection data: synthetic layouts, label encodings, DASNet / LSNet preprocessing,
augmentation, parity with the official-style torch references, the Otsu tool, and a DatasetError naming
the file (and list line) for every kind of bad input."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

from rsrepro.data.cd_transforms import CD_TRANSFORMS, MEANS_BGR, RandomPairRot90
from rsrepro.data.cdd import (
    CDDDataset,
    LEVIRCDDataset,
    binarize_label,
    channel_means,
    inspect_label,
    otsu_binarize,
)
from rsrepro.data.errors import DatasetError, TransformConfigError
from rsrepro.data.synthetic import change_pair, generate_cdd, generate_levir
from rsrepro.data.synthetic import main as synthetic_main
from tools.prepare_cdd_binary import main as prepare_main
from torch_ref.datasets.cdd import BCDD_MEANS, DASNetCDDReference, LSNetCDDReference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# dasnet.md: per-time means, BGR order, subtracted after RGB -> BGR.
CDD_T0, CDD_T1 = (87.72, 100.2, 90.43), (120.24, 127.93, 121.18)
BCDD_T0, BCDD_T1 = (98.62, 113.27, 123.59), (117.38, 123.09, 123.20)


@pytest.fixture(scope="module")
def cdd(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdd")
    return generate_cdd(root, num_train=4, num_val=3, num_test=2, size=64, seed=0)


@pytest.fixture(scope="module")
def cdd01(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdd01")
    return generate_cdd(root, num_train=4, num_val=3, num_test=2, size=64, seed=0, label_format="png01")


def small(tmp_path, **kwargs):
    """A 2-pair copy to break on purpose."""
    options = dict(num_train=2, num_val=0, num_test=0, size=32, seed=1)
    options.update(kwargs)
    return generate_cdd(tmp_path / "cdd", **options)


def to_hwc_uint8(chw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(chw.transpose(1, 2, 0)).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Synthetic generator
# --------------------------------------------------------------------------------------------------


def test_generator_writes_real_layout_and_encodings(cdd):
    root = cdd["root"]
    written = []
    for dirpath, _, names in os.walk(root):
        written += [os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/") for n in names]
    pattern = re.compile(r"^(train|val|test)/((A|B|OUT)/\d{5}\.jpg|OUT_binary/\d{5}\.png)$")
    images = sorted(p for p in written if not p.endswith(".txt"))
    assert len(images) == (4 + 3 + 2) * 4 and all(pattern.match(p) for p in images), images
    assert sorted(p for p in written if p.endswith(".txt")) == ["test.txt", "train.txt", "val.txt"]

    with open(os.path.join(root, "val.txt"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines == [f"val/A/{i:05d}.jpg val/B/{i:05d}.jpg val/OUT/{i:05d}.jpg" for i in range(3)]

    noisy = 0
    for sample in cdd["files"]["train"]:
        for key in ("t0", "t1"):
            with Image.open(sample[key]) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 64))
        with Image.open(sample["label"]) as image:
            assert (image.format, image.mode) == ("JPEG", "L")
            values = np.array(image)
        noisy += int((~np.isin(values, (0, 255))).sum())  # JPEG noise, as in the real OUT files
        with Image.open(sample["binary"]) as image:
            assert (image.format, image.mode) == ("PNG", "L")
            assert set(np.unique(np.array(image)).tolist()) <= {0, 255}
    assert noisy > 0


def test_generator_is_deterministic_and_fast(tmp_path):
    first = generate_cdd(tmp_path / "a", num_train=8, num_val=4, num_test=0, seed=3)
    second = generate_cdd(tmp_path / "b", num_train=8, num_val=4, num_test=0, seed=3)
    other = generate_cdd(tmp_path / "c", num_train=1, num_val=0, num_test=0, seed=4)
    assert first["seconds"] < 1.0, f"12 pairs of 256x256 took {first['seconds']:.2f} s"
    for split in ("train", "val"):
        for a, b in zip(first["files"][split], second["files"][split]):
            for key in a:
                with open(a[key], "rb") as fa, open(b[key], "rb") as fb:
                    assert fa.read() == fb.read(), a[key]
    with open(first["files"]["train"][0]["t0"], "rb") as fa:
        with open(other["files"]["train"][0]["t0"], "rb") as fb:
            assert fa.read() != fb.read()


def test_generator_object_and_season_knobs_reach_every_pair(tmp_path):
    """``buildings`` / ``building_size`` / ``season_shift`` of generate_cdd are change_pair's, per pair."""
    default = generate_cdd(tmp_path / "d", num_train=12, num_val=0, num_test=0, size=64, with_binary=False)
    knobs = dict(buildings=(3, 7), building_size=(1 / 6, 1 / 3), season_shift=False)
    larger = generate_cdd(tmp_path / "l", num_train=12, num_val=0, num_test=0, size=64, with_binary=False, **knobs)
    for index, sample in enumerate(larger["files"]["train"]):
        pair = change_pair(np.random.default_rng((0, 7, 0, index)), size=64, **knobs)
        stored = np.array(Image.open(sample["label"])) > 127
        assert (stored != pair.change).mean() < 0.01  # the JPEG label of this pair
        assert pair.seasons[0] == pair.seasons[1] == "summer"
    assert np.mean(larger["changed_fraction"]["train"]) > 1.5 * np.mean(default["changed_fraction"]["train"])
    assert any(a != b for a, b in default["seasons"]["train"])


def test_labels_mark_object_changes_not_the_season(cdd01):
    # the written 0/1 label is exactly the change mask of the generated pair (same seed stream)
    for index, sample in enumerate(cdd01["files"]["train"]):
        pair = change_pair(np.random.default_rng((0, 7, 0, index)), size=64)
        assert np.array_equal(np.array(Image.open(sample["label"])), pair.change.astype(np.uint8))
    shifted = 0
    for seed in range(12):
        pair = change_pair(np.random.default_rng(seed), size=128)
        assert 0.0 < pair.change.mean() < 0.6
        unchanged = ~pair.change
        diff = np.abs(pair.t0.astype(np.int16) - pair.t1.astype(np.int16)).mean(axis=2)[unchanged]
        if pair.seasons[0] != pair.seasons[1]:
            # the whole unchanged scene looks different (seasonal colour shift), yet the label is 0 there
            assert diff.mean() > 15.0, (pair.seasons, diff.mean())
            shifted += 1
    assert shifted >= 6


# --------------------------------------------------------------------------------------------------
# Layouts and labels
# --------------------------------------------------------------------------------------------------


def test_list_and_folder_layouts_agree_and_list_order_is_kept(cdd, tmp_path):
    root = cdd["root"]
    listed = CDDDataset(root, "val")
    folder = CDDDataset(root, "val", layout="folder")
    assert (listed.layout, folder.layout) == ("list", "folder")
    assert (listed.NUM_CLASSES, listed.CLASS_NAMES) == (2, ("unchanged", "changed"))
    assert listed.files == folder.files == [(s["t0"], s["t1"], s["label"]) for s in cdd["files"]["val"]]
    assert listed.names == ["00000.jpg", "00001.jpg", "00002.jpg"]
    for i in range(len(listed)):
        for a, b in zip(listed[i], folder[i]):
            assert np.array_equal(a, b)

    # the official val.txt is not sorted: a list keeps its order; a relative list path is found under root
    with open(os.path.join(root, "val.txt"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    with open(os.path.join(root, "val_reversed.txt"), "w", encoding="utf-8", newline="") as handle:
        handle.write("\r\n".join(lines[::-1]) + "\r\n\r\n")  # Windows line ends and a blank line
    reversed_ds = CDDDataset(root, "val", list_file="val_reversed.txt")
    assert reversed_ds.files == listed.files[::-1]
    assert reversed_ds.samples[0].where.endswith("val_reversed.txt:1")


def test_auto_layout_rules(cdd):
    root = cdd["root"]
    assert CDDDataset(root, "train", label_dir="OUT_binary").layout == "folder"
    assert CDDDataset(root, "train", label_dir="OUT").layout == "list"
    with pytest.raises(DatasetError, match="label_dir='OUT_binary' applies to the folder layout"):
        CDDDataset(root, "train", layout="list", label_dir="OUT_binary")
    with pytest.raises(DatasetError, match="list_file was given with layout='folder'"):
        CDDDataset(root, "train", layout="folder", list_file="train.txt")
    for bad, match in (({"layout": "tree"}, "layout must be"), ({"preprocessing": "x"}, "preprocessing must"),
                       ({"label_values": "bits"}, "label_values must")):  # fmt: skip
        with pytest.raises(DatasetError, match=match):
            CDDDataset(root, "train", **bad)
    with pytest.raises(DatasetError, match="root folder not found"):
        CDDDataset(os.path.join(root, "nope"), "train")


def test_label_encoding_is_detected_and_reported(cdd, cdd01, caplog):
    with caplog.at_level(logging.INFO, logger="rsrepro.data.cdd"):
        raw = CDDDataset(cdd["root"], "train")
        zero_one = CDDDataset(cdd01["root"], "train")
    assert (raw.label_encoding, zero_one.label_encoding) == ("0-255", "0-1")
    assert raw.encoding_counts == {"0-255": 4, "0-1": 0, "blank": 0}
    assert zero_one.encoding_counts["0-1"] == 4
    messages = [r.getMessage() for r in caplog.records if r.name == "rsrepro.data.cdd"]
    assert any("label encoding 0-255" in m and "4 of 4" in m for m in messages), messages
    assert any("label encoding 0-1" in m for m in messages), messages
    assert CDDDataset.lsnet(cdd["root"], "train").label_encoding == "0-255"  # OUT_binary PNGs

    # the same scenes stored as noisy 0/255 JPEGs and as 0/1 PNGs binarise to the same labels
    assert zero_one.files[0][2].endswith("OUT/00000.png")
    for i in range(len(raw)):
        assert np.array_equal(raw[i][2], zero_one[i][2]), i
        assert raw[i][2].dtype == np.int64 and set(np.unique(raw[i][2]).tolist()) <= {0, 1}

    unprobed = CDDDataset(cdd["root"], "train", probe=0)
    assert unprobed.label_encoding == "unknown"
    unprobed[1]
    assert unprobed.label_encoding == "0-255" and unprobed.encoding_counts["0-255"] == 1


def test_mixed_encodings_warn_with_counts(cdd, tmp_path):
    import cv2

    root = shutil.copytree(cdd["root"], tmp_path / "mixed")
    label_path = os.path.join(root, "train", "OUT", "00002.jpg")
    original = CDDDataset(cdd["root"], "train")[2][2]
    # what DASNet-V2's script.ipynb writes: the 0/1 mask through cv2.imwrite as a JPEG (quality 95)
    cv2.imwrite(label_path, original.astype(np.int32))
    stored = np.array(Image.open(label_path))
    assert 1 <= stored.max() <= 3
    match = r"mixed: 3 file\(s\) 0/255 and 1 file\(s\) 0/1 among 4 probed .*00002"
    with pytest.warns(UserWarning, match=match):
        dataset = CDDDataset(root, "train", probe=None)
    assert dataset.label_encoding == "mixed"
    assert dataset.encoding_counts == {"0-255": 3, "0-1": 1, "blank": 0}
    label = dataset[2][2]
    assert np.array_equal(label, (stored >= 1).astype(np.int64))  # binarised at >= 1, not at 128
    assert label.sum() > 0.8 * original.sum()  # (JPEG compression of a 0/1 map loses some changed pixels)
    # the 2025 official rule (> 1) would have emptied that label: it is not applied to 0/1 files
    assert np.array_equal(CDDDataset(root, "train", threshold=2, probe=0)[2][2], label)
    lazy = CDDDataset(root, "train", probe=0)
    lazy[0], lazy[1]
    with pytest.warns(UserWarning, match=r"mixed: 2 file\(s\) 0/255 and 1 file\(s\) 0/1 so far .*00002\.jpg"):
        lazy[2]
    assert lazy.label_encoding == "mixed"


def test_blank_labels_and_forced_label_values(tmp_path):
    info = small(tmp_path)
    root = info["root"]
    for sample in info["files"]["train"]:
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(sample["label"], format="JPEG")
    blank = CDDDataset(root, "train")
    assert blank.label_encoding == "blank" and blank[0][2].sum() == 0
    assert CDDDataset(root, "train", label_values="0-1").label_encoding == "blank"

    info = small(tmp_path / "second")
    with pytest.raises(DatasetError, match=r"0-255, but label_values='0-1'.*train\.txt:1.*00000\.jpg"):
        CDDDataset(info["root"], "train", label_values="0-1")
    assert CDDDataset(info["root"], "train", label_values="0-255").label_encoding == "0-255"


def test_binarisation_rules(cdd):
    default = CDDDataset(cdd["root"], "val")
    official_2025 = CDDDataset(cdd["root"], "val", threshold=2)
    extra = 0
    for i in range(len(default)):
        raw = default.read_raw_label(i)
        assert np.array_equal(default[i][2], (raw >= 128).astype(np.int64))
        assert np.array_equal(official_2025[i][2], (raw > 1).astype(np.int64))
        extra += int(official_2025[i][2].sum() - default[i][2].sum())
    assert extra > 0  # "> 1" also takes the JPEG noise halo around every change
    for bad in (0, 256, True, 1.5):
        with pytest.raises(DatasetError, match="threshold must be an int in 1..255"):
            CDDDataset(cdd["root"], "val", threshold=bad)

    assert inspect_label(np.zeros((4, 4), np.uint8)).kind == "blank"
    assert inspect_label(np.array([[0, 1], [2, 0]], np.uint8)).kind == "0-1"
    assert inspect_label(np.array([[0, 4], [255, 0]], np.uint8)).kind == "0-255"
    values = np.array([[0, 1, 2, 127, 128, 255]], np.uint8)
    assert binarize_label(values, "0-255").tolist() == [[0, 0, 0, 0, 1, 1]]
    assert binarize_label(np.array([[0, 1, 2]], np.uint8), "0-1").tolist() == [[0, 1, 1]]


def test_non_binary_labels_warn_or_fail(tmp_path):
    info = small(tmp_path, size=64)
    root = info["root"]
    label = np.zeros((64, 64), np.uint8)
    label[:32] = 255
    label[32:40] = 128  # 12.5 % mid values: more than JPEG noise, still a mask
    Image.fromarray(label).save(info["files"]["train"][0]["label"], format="PNG")
    with pytest.warns(UserWarning, match=r"512 of 4096 pixels with values 64..191.*00000\.jpg"):
        dataset = CDDDataset(root, "train")
    assert dataset[0][2].sum() == 40 * 64  # binarised at >= 128 (128 counts as changed)

    gradient = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))  # a picture, not a mask
    Image.fromarray(gradient).save(info["files"]["train"][1]["label"], format="PNG")
    with pytest.raises(DatasetError, match=r"not a binary mask.*00001\.jpg.*listed at .*train\.txt:2"):
        CDDDataset(root, "train", probe=None)


# --------------------------------------------------------------------------------------------------
# Preprocessing and augmentation
# --------------------------------------------------------------------------------------------------


def test_dasnet_preprocessing_means(cdd):
    assert MEANS_BGR == {"cdd": (CDD_T0, CDD_T1), "bcdd": (BCDD_T0, BCDD_T1)}
    for means, (m0, m1) in (("cdd", (CDD_T0, CDD_T1)), ("bcdd", (BCDD_T0, BCDD_T1)),
                            (((1, 2, 3), (4, 5, 6)), ((1, 2, 3), (4, 5, 6)))):  # fmt: skip
        dataset = CDDDataset(cdd["root"], "val", means=means)
        t0, t1, _ = dataset[1]
        raw0, raw1, _ = dataset.read_sample(1)
        assert t0.dtype == np.float32 and t0.shape == (3, 64, 64) and t0.flags.c_contiguous
        for t, raw, mean in ((t0, raw0, m0), (t1, raw1, m1)):
            for c in range(3):  # channel c of the output = BGR channel c = RGB channel 2 - c
                expected = (raw[:, :, 2 - c].astype(np.float64) - mean[c]).astype(np.float32)
                assert np.array_equal(t[c], expected), (means, c)
    for bad in ("whu", ((1, 2), (3, 4)), ((1, 2, 3),), ((1, 2, "x"), (1, 2, 3))):
        with pytest.raises(DatasetError, match="means"):
            CDDDataset(cdd["root"], "val", means=bad)


def test_lsnet_preprocessing_and_labels(cdd):
    train = CDDDataset.lsnet(cdd["root"], "train")
    val = CDDDataset.lsnet(cdd["root"], "val")
    assert train.augment is not None and val.augment is None and val.means is None
    t0, t1, label = val[0]
    raw0, raw1, _ = val.read_sample(0)
    assert np.array_equal(t0, raw0.transpose(2, 0, 1).astype(np.float32))
    assert np.array_equal(t1, raw1.transpose(2, 0, 1).astype(np.float32))
    binary = np.array(Image.open(cdd["files"]["val"][0]["binary"]))
    assert np.array_equal(label, (binary // 255).astype(np.int64))
    assert val.files[0][2].endswith(os.path.join("OUT_binary", "00000.png"))


def apply_draws(array: np.ndarray, hflip: bool, vflip: bool, quarter_turns: int) -> np.ndarray:
    if hflip:
        array = array[:, ::-1]
    if vflip:
        array = array[::-1]
    return np.rot90(array, quarter_turns)


def replay_draws(rng: random.Random):
    """The documented draw order: h-flip, v-flip, rotate?, then the angle only if rotating."""
    hflip = rng.random() < 0.5
    vflip = rng.random() < 0.5
    turns = rng.choice((90, 180, 270)) // 90 if rng.random() < 0.75 else 0
    return hflip, vflip, turns


def test_lsnet_augmentation_is_deterministic_consistent_and_in_documented_order(cdd):
    dataset = CDDDataset.lsnet(cdd["root"], "train", seed=5)
    seen = set()
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            t0, t1, label = dataset[i]
            again = dataset[i]
            assert all(np.array_equal(a, b) for a, b in zip((t0, t1, label), again))
            draws = replay_draws(dataset.rng_for(i))
            seen.add(draws)
            raw0, raw1, raw_label = dataset.read_sample(i)
            # the same geometric transform on t0, t1 and the label, exactly the replayed one
            assert np.array_equal(to_hwc_uint8(t0), apply_draws(raw0, *draws))
            assert np.array_equal(to_hwc_uint8(t1), apply_draws(raw1, *draws))
            assert np.array_equal(label, apply_draws(raw_label, *draws).astype(np.int64))
    assert len(seen) >= 5, seen  # the augmentation really varies over samples and epochs

    # non-square: a quarter turn swaps height and width
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    image = np.repeat(a[..., None], 3, axis=2)
    out = RandomPairRot90(prob=1.0, angles=(90,))(image, image, a, random.Random(0))
    assert out[0].shape[:2] == out[2].shape == (3, 2)
    assert np.array_equal(out[2], [[2, 5], [1, 4], [0, 3]])  # counter-clockwise, as Pillow ROTATE_90


def test_augment_config_and_errors(cdd):
    flipped = CDDDataset(cdd["root"], "val", augment=[{"type": "RandomPairHFlip", "prob": 1.0}], seed=0)
    plain = CDDDataset(cdd["root"], "val")
    for a, b in zip(flipped[0], plain[0]):
        assert np.array_equal(a, b[..., ::-1])
    assert "LSNetTrain" in CD_TRANSFORMS.names()
    with pytest.raises(TransformConfigError, match="RandomPairSpin"):
        CDDDataset(cdd["root"], "val", augment=[{"type": "RandomPairSpin"}])
    with pytest.raises(TransformConfigError, match="prob"):
        CDDDataset(cdd["root"], "val", augment={"RandomPairVFlip": {"prob": 2.0}})
    with pytest.raises(DatasetError, match="augment must be"):
        CDDDataset(cdd["root"], "val", augment="dasnet")


# --------------------------------------------------------------------------------------------------
# Parity with the official-style torch references
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture, threshold, rule, means",
    [("cdd", 128, "ge128", "cdd"), ("cdd", 2, "gt1", "cdd"), ("cdd01", 128, "raw", "cdd"),
     ("cdd", 128, "ge128", "bcdd")],
)  # fmt: skip
def test_dasnet_loading_matches_official_style_reference(request, fixture, threshold, rule, means):
    info = request.getfixturevalue(fixture)
    root = info["root"]
    ours = CDDDataset(root, "val", threshold=threshold, means=means)
    # 64x64 test data: without the official Scale((256, 256)) (a copy at CDD's 256x256, tested below)
    reference_means = BCDD_MEANS if means == "bcdd" else (CDD_T0, CDD_T1)
    reference = DASNetCDDReference(root, root, os.path.join(root, "val.txt"), transform_med=None,
                                   means=reference_means, label_rule=rule)  # fmt: skip
    assert len(ours) == len(reference) == 3
    for i in range(len(ours)):
        t0, t1, label = ours[i]
        r0, r1, rlabel, filename, height, width = reference[i]
        assert (filename, height, width) == (f"val/B/{i:05d}.jpg", 64, 64)
        assert np.array_equal(t0, r0.numpy()) and np.array_equal(t1, r1.numpy())
        assert t0.dtype == r0.numpy().dtype == np.float32
        assert np.array_equal(label, rlabel.numpy()) and label.dtype == rlabel.numpy().dtype == np.int64


def test_official_scale_is_a_copy_at_256(tmp_path):
    info = generate_cdd(tmp_path / "full", num_train=0, num_val=2, num_test=0, size=256, seed=2)
    root = info["root"]
    ours = CDDDataset(root, "val")
    reference = DASNetCDDReference(root, root, os.path.join(root, "val.txt"), label_rule="ge128")
    for i in range(len(ours)):
        for a, b in zip(ours[i], reference[i][:3]):
            assert np.array_equal(a, b.numpy())


def test_lsnet_loading_and_augmentation_match_reference(cdd):
    ours = CDDDataset.lsnet(cdd["root"], "train", seed=11)
    reference = LSNetCDDReference(cdd["root"], "train", aug=True)
    for epoch in range(2):
        ours.set_epoch(epoch)
        for i in range(len(ours)):
            t0, t1, label = ours[i]
            r0, r1, mask, name = reference.load(i, ours.rng_for(i))
            assert name == ours.names[i]
            assert np.array_equal(t0, r0.numpy()) and np.array_equal(t1, r1.numpy())
            assert np.array_equal(label, mask.long().numpy())
            assert set(np.unique(mask.numpy()).tolist()) <= {0.0, 1.0}


# --------------------------------------------------------------------------------------------------
# Otsu preparation tool
# --------------------------------------------------------------------------------------------------


def test_prepare_cdd_binary_tool(cdd, tmp_path, capsys):
    root = shutil.copytree(cdd["root"], tmp_path / "copy")
    for split in ("train", "val", "test"):
        shutil.rmtree(os.path.join(root, split, "OUT_binary"))
    summary_path = os.path.join(root, "otsu.json")
    summary = prepare_main(["--root", str(root), "--split", "train", "val", "--compare", "--summary",
                            summary_path])  # fmt: skip
    printed = capsys.readouterr().out
    assert "train: 4 labels" in printed and "thresholds min" in printed and "vs skimage" in printed
    with open(summary_path, encoding="utf-8") as handle:
        assert json.load(handle) == json.loads(json.dumps(summary))
    for report, split in zip(summary["splits"], ("train", "val")):
        assert report["labels"] == len(cdd["files"][split])
        assert report["threshold_min"] <= report["threshold_median"] <= report["threshold_max"]
        assert report["compare_skimage"]["files_with_other_map"] == 0
        names = sorted(os.listdir(os.path.join(root, split, "OUT_binary")))
        assert names == [f"{i:05d}.png" for i in range(len(cdd["files"][split]))]  # no temporary files left
        for sample, name in zip(cdd["files"][split], names):
            ours = np.array(Image.open(os.path.join(root, split, "OUT_binary", name)))
            assert np.array_equal(ours, np.array(Image.open(sample["binary"])))
    assert not os.path.exists(os.path.join(root, "test", "OUT_binary"))

    # a bad label: the others are still written, then the run fails naming the file
    with open(os.path.join(root, "test", "OUT", "00001.jpg"), "wb") as handle:
        handle.write(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"1 label file\(s\) could not be read.*00001\.jpg"):
        prepare_main(["--root", str(root), "--split", "test"])
    assert os.listdir(os.path.join(root, "test", "OUT_binary")) == ["00000.png"]
    with pytest.raises(DatasetError, match="label folder for split 'extra' not found"):
        prepare_main(["--root", str(root), "--split", "extra"])
    script = os.path.join(REPO, "tools", "prepare_cdd_binary.py")
    done = subprocess.run([sys.executable, script, "--root", str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=str(tmp_path))  # fmt: skip
    assert done.returncode == 1 and "CDD root folder not found" in done.stderr


def test_otsu_methods_agree_except_on_constant_labels():
    rng = np.random.default_rng(0)
    label = np.zeros((32, 32), np.uint8)
    label[8:20, 4:30] = 255
    noisy = np.clip(label.astype(int) + rng.integers(-20, 21, label.shape), 0, 255).astype(np.uint8)
    t_cv2, map_cv2 = otsu_binarize(noisy, "cv2")
    t_sk, map_sk = otsu_binarize(noisy, "skimage")
    assert np.array_equal(map_cv2, map_sk) and np.array_equal(map_cv2 > 0, label > 0)
    assert t_cv2 == t_sk
    full = np.full((4, 4), 255, np.uint8)
    assert otsu_binarize(full, "cv2")[1].min() == 255 and otsu_binarize(full, "skimage")[1].max() == 0
    with pytest.raises(ValueError, match="method"):
        otsu_binarize(noisy, "matlab")


# --------------------------------------------------------------------------------------------------
# Bad input: a DatasetError naming the file (and list line)
# --------------------------------------------------------------------------------------------------


def write_list(root, lines, name="train.txt"):
    with open(os.path.join(root, name), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def test_bad_list_files(tmp_path):
    info = small(tmp_path)
    root = info["root"]
    good = "train/A/00000.jpg train/B/00000.jpg train/OUT/00000.jpg"
    write_list(root, [good, "train/A/00001.jpg train/B/00009.jpg train/OUT/00001.jpg"])
    with pytest.raises(DatasetError, match=r"train\.txt:2: t1 image file not found: .*B[/\\]00009\.jpg"):
        CDDDataset(root, "train")
    write_list(root, [good, "train/A/00001.jpg train/B/00001.jpg"])
    with pytest.raises(DatasetError, match=r"train\.txt:2: expected three .* found 2 field\(s\)"):
        CDDDataset(root, "train")
    write_list(root, [good + " extra"])
    with pytest.raises(DatasetError, match=r"train\.txt:1: .*found 4 field\(s\)"):
        CDDDataset(root, "train")
    write_list(root, ["", "  "])
    with pytest.raises(DatasetError, match=r"no entries \(empty split\): .*train\.txt"):
        CDDDataset(root, "train")
    with pytest.raises(DatasetError, match=r"list file not found: .*nope\.txt"):
        CDDDataset(root, "train", list_file="nope.txt")


def test_bad_folders(tmp_path):
    info = small(tmp_path)
    root = info["root"]
    with pytest.raises(DatasetError, match=r"label folder for split 'train' not found: .*OUT_sharp"):
        CDDDataset(root, "train", layout="folder", label_dir="OUT_sharp")
    shutil.rmtree(os.path.join(root, "train", "OUT_binary"))
    with pytest.raises(DatasetError, match="prepare_cdd_binary.py"):
        CDDDataset.lsnet(root, "train")
    os.remove(os.path.join(root, "train", "B", "00001.jpg"))
    with pytest.raises(DatasetError, match=r"1 image\(s\) in .*A have no t1 image; first: .*B.00001\.jpg"):
        CDDDataset(root, "train", layout="folder")
    shutil.copy(os.path.join(root, "train", "B", "00000.jpg"), os.path.join(root, "train", "B", "00001.jpg"))
    os.remove(os.path.join(root, "train", "OUT", "00000.jpg"))
    with pytest.raises(DatasetError, match=r"have no label; first: .*OUT[/\\]00000\.jpg"):
        CDDDataset(root, "train", layout="folder")
    os.makedirs(os.path.join(root, "val", "A"))
    os.makedirs(os.path.join(root, "val", "B"))
    os.makedirs(os.path.join(root, "val", "OUT"))
    with open(os.path.join(root, "val", "A", "notes.txt"), "w") as handle:
        handle.write("x")
    with pytest.warns(UserWarning, match="skipped 1 non-image entry"):
        with pytest.raises(DatasetError, match=r"no images found for split 'val' \(empty split\)"):
            CDDDataset(root, "val", layout="folder")


def save_jpeg(path, array):
    Image.fromarray(array).save(path, format="JPEG")


@pytest.mark.parametrize(
    "break_it, match",
    [
        ("b_size", r"t0 and t1 images differ in size: 32x32 \(WxH\) .*A.00000\.jpg vs 31x32 .*B.00000\.jpg"),
        ("label_size", r"label size 32x30 \(WxH\) differs from image size 32x32: label .*OUT[/\\]00000\.jpg"),
        ("gray", r"must be 3-channel RGB, found grayscale \(1 channel\).*A[/\\]00000\.jpg"),
        ("rgba", r"must be 3-channel RGB, found RGBA \(4 channels\).*A[/\\]00000\.png"),
        ("rgb_label", r"label must be a single-channel .* found RGB \(3 channels\).*OUT[/\\]00000\.jpg"),
        ("empty", r"image file is empty \(0 bytes\): .*B[/\\]00000\.jpg"),
        ("garbage", r"not a readable image .*A[/\\]00000\.jpg"),
        ("truncated", r"truncated or corrupt .*A[/\\]00000\.jpg"),
        ("empty_label", r"label file is empty \(0 bytes\): .*OUT[/\\]00000\.jpg"),
    ],
)  # fmt: skip
def test_bad_files_raise_dataset_error_naming_the_file(tmp_path, monkeypatch, break_it, match):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    info = small(tmp_path)
    root = info["root"]
    sample = info["files"]["train"][0]
    rgb = np.array(Image.open(sample["t0"]))
    if break_it == "b_size":
        save_jpeg(sample["t1"], rgb[:, :31])
    elif break_it == "label_size":
        Image.fromarray(np.zeros((30, 32), np.uint8)).save(sample["label"], format="JPEG")
    elif break_it == "gray":
        save_jpeg(sample["t0"], rgb[:, :, 0])
    elif break_it == "rgba":
        Image.fromarray(np.dstack([rgb, np.full((32, 32), 255, np.uint8)])).save(
            os.path.join(root, "train", "A", "00000.png"))
        write_list(root, ["train/A/00000.png train/B/00000.jpg train/OUT/00000.jpg"])
    elif break_it == "rgb_label":
        save_jpeg(sample["label"], rgb)
    elif break_it in ("empty", "empty_label"):
        open(sample["t1"] if break_it == "empty" else sample["label"], "wb").close()
    elif break_it == "garbage":
        with open(sample["t0"], "wb") as handle:
            handle.write(b"\x00" * 200)
    elif break_it == "truncated":
        with open(sample["t0"], "rb") as handle:
            data = handle.read()
        with open(sample["t0"], "wb") as handle:
            handle.write(data[: len(data) // 2])
    dataset = CDDDataset(root, "train", probe=0)
    with pytest.raises(DatasetError, match=match) as caught:
        dataset[0]
    assert "train.txt:1" in str(caught.value)  # and the list line it came from
    with pytest.raises(DatasetError, match=match):
        dataset.validate()


def test_convert_images_accepts_grayscale_with_a_warning(tmp_path):
    info = small(tmp_path)
    sample = info["files"]["train"][0]
    save_jpeg(sample["t0"], np.array(Image.open(sample["t0"]))[:, :, 1])
    dataset = CDDDataset(info["root"], "train", convert_images=True)
    with pytest.warns(UserWarning, match=r"converting grayscale .*00000\.jpg"):
        t0, _, _ = dataset[0]
    assert np.array_equal(t0[0] + CDD_T0[0], t0[2] + CDD_T0[2])  # gray replicated into B, G, R


# --------------------------------------------------------------------------------------------------
# LEVIR-CD and the command line
# --------------------------------------------------------------------------------------------------


def test_levir_layout(tmp_path):
    info = generate_levir(tmp_path / "levir", num_train=3, num_val=1, num_test=1, size=64, seed=0)
    root = info["root"]
    assert sorted(os.listdir(os.path.join(root, "train"))) == ["A", "B", "label"]
    names = sorted(os.listdir(os.path.join(root, "train", "label")))
    assert names == ["train_1.png", "train_2.png", "train_3.png"]
    with Image.open(info["files"]["train"][0]["label"]) as label:
        assert (label.format, label.mode) == ("PNG", "L")
        assert set(np.unique(np.array(label)).tolist()) == {0, 255}
    dataset = LEVIRCDDataset(root, "train", preprocessing="lsnet")
    assert (dataset.layout, dataset.label_encoding, len(dataset)) == ("folder", "0-255", 3)
    t0, t1, label = dataset[2]
    assert t0.shape == t1.shape == (3, 64, 64) and label.shape == (64, 64)
    means = channel_means(dataset)
    raw = np.stack([dataset.read_sample(i)[0] for i in range(3)])
    assert np.allclose(means[0], raw.reshape(-1, 3)[:, ::-1].mean(axis=0), atol=0.005)
    assert LEVIRCDDataset(root, "val", means=means).means == means


def test_command_line_writes_cdd(tmp_path, capsys):
    out = tmp_path / "cli"
    synthetic_main(["--dataset", "cdd", "--out", str(out), "--num_train", "2", "--num_val", "1", "--num_test",
                    "1", "--size", "32", "--label_format", "png01", "--no_binary"])  # fmt: skip
    assert "wrote synthetic cdd" in capsys.readouterr().out
    with open(out / "test.txt", encoding="utf-8") as handle:
        assert handle.read() == "test/A/00000.jpg test/B/00000.jpg test/OUT/00000.png\n"
    assert not (out / "train" / "OUT_binary").exists()
    assert CDDDataset(out, "train").label_encoding in ("0-1", "blank")
