"""iSAID data layer: palette and naming, colour decoding with reporting, layouts, windows, augmentation
against the official-style reference, the synthetic generator and the devkit patch tool."""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import pytest
from PIL import Image

from rsrepro.data.errors import DatasetError
from rsrepro.data.isaid import ISAIDDataset, NormalizePixels, RandomRotate90K, find_isaid_pairs, read_isaid_mask
from rsrepro.data.synthetic import generate_isaid
from rsrepro.factseg_windows import factseg_windows
from rsrepro.isaid import (
    CLASS_NAMES,
    DEVKIT_CLASS_NAMES,
    PALETTE,
    color_key,
    decode_color_mask,
    encode_color_mask,
)
from torch_ref.datasets.isaid import ISAIDFolderReference, ISAIDPatchReference, remove_color_map, sliding_window

SIZES = [(200, 300), (100, 260), (180, 150)]  # two train images (one shorter than the window), one val


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("isaid")
    return generate_isaid(path, num_train=2, num_val=1, sizes=SIZES, num_objects=(6, 12), seed=3)["root"]


def test_palette_keys_and_devkit_names():
    keys = color_key(np.asarray(PALETTE))
    assert len(set(keys.tolist())) == 16
    assert PALETTE[2] == (0, 191, 127) and PALETTE[12] == (0, 63, 63)
    assert CLASS_NAMES[2] == "storage_tank" and DEVKIT_CLASS_NAMES[2] == "roundabout"
    assert CLASS_NAMES[12] == "roundabout" and DEVKIT_CLASS_NAMES[12] == "storage_tank"
    assert [a for a, b in zip(CLASS_NAMES, DEVKIT_CLASS_NAMES) if a != b] == ["storage_tank", "roundabout"]


def test_decode_matches_official_and_reports_unknown_colours():
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 16, size=(40, 30)).astype(np.uint8)
    mask = encode_color_mask(labels)
    mask[0, 0] = (5, 5, 5)  # key 30: no class -> background
    mask[0, 1] = (126, 0, 0)  # key 126 = baseball_diamond's (0, 63, 0): the official decoder aliases it
    mask[1, :4] = (255, 255, 255)  # white: key 1530, no class
    decoded, report = decode_color_mask(mask, chunk_rows=7)
    assert np.array_equal(decoded, remove_color_map(mask))
    assert decoded[0, 1] == 3 and decoded[0, 0] == 0
    assert report.unknown == 6 and report.aliased == 1
    assert report.examples[0] == ((255, 255, 255), 4)
    clean, clean_report = decode_color_mask(encode_color_mask(labels))
    assert np.array_equal(clean, labels) and clean_report.unknown == 0


def test_unknown_colours_warn_once_error_or_ignore(tmp_path):
    info = generate_isaid(tmp_path, num_train=1, num_val=0, size=(64, 64), num_objects=(2, 3), unknown_pixels=5)
    path = info["files"]["train"][0]["mask"]
    with pytest.warns(UserWarning, match=r"P0000_instance_color_RGB.png: 5 pixels with colours outside the iSAID"):
        read_isaid_mask(path, "warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_isaid_mask(path, "warn")  # once per file
        read_isaid_mask(path, "ignore")
    with pytest.raises(DatasetError, match="outside the iSAID palette.*P0000_instance_color_RGB.png"):
        read_isaid_mask(path, "error")
    with pytest.raises(DatasetError, match="outside the iSAID palette"):
        ISAIDDataset(str(tmp_path), "train", window=64, stride=32, on_unknown="error")[0]


def test_layouts_and_missing_masks(tmp_path):
    root = generate_isaid(tmp_path / "own", num_train=2, num_val=1, sizes=SIZES, num_objects=(2, 3))["root"]
    pairs = find_isaid_pairs(root, "train")
    assert [os.path.basename(p.image) for p in pairs] == ["P0000.png", "P0001.png"]
    assert all(p.mask.endswith("masks/" + os.path.basename(p.image)[:-4] + "_instance_color_RGB.png") for p in pairs)
    # The download's Semantic_masks/images layout, and a mixed folder holding images and masks.
    for sub in (("Semantic_masks", "images"), ("images",)):
        split = tmp_path / "_".join(sub) / "val"
        (split / "images").mkdir(parents=True)
        (split / os.path.join(*sub)).mkdir(parents=True, exist_ok=True)
        for name in ("P0009.png", "P0009_instance_color_RGB.png", "P0009_instance_id_RGB.png"):
            folder = "images" if name == "P0009.png" else os.path.join(*sub)
            Image.new("RGB", (8, 8)).save(split / folder / name)
        found = find_isaid_pairs(str(split.parent), "val")
        assert len(found) == 1 and found[0].mask.endswith("P0009_instance_color_RGB.png")
    os.remove(os.path.join(root, "val", "masks", "P0002_instance_color_RGB.png"))
    with pytest.raises(DatasetError, match="1 iSAID image.*no mask; first: P0002.png"):
        find_isaid_pairs(root, "val")
    assert find_isaid_pairs(root, "val", require_masks=False)[0].mask is None
    with pytest.raises(DatasetError, match="image folder for split 'test' not found"):
        find_isaid_pairs(root, "test")


def test_training_windows_and_augmentation_match_official(root):
    ours = ISAIDDataset(root, "train", window=128, stride=64)
    ref = ISAIDPatchReference(os.path.join(root, "train", "images"), os.path.join(root, "train", "masks"), 128, 64)
    assert len(ours) == len(ref) == len(factseg_windows(200, 300, 128, 64)) + len(factseg_windows(100, 260, 128, 64))
    for index in (0, len(ours) - 1):  # a full window and a 100-row window (rotated and padded)
        for seed in range(4):
            a, b = random.Random(seed), random.Random(seed)
            image, label = ours.load(index, a)
            ref_image, ref_label = ref.load(index, b)
            assert image.dtype == np.float32 and image.shape == (3, 128, 128) and label.dtype == np.int64
            assert np.array_equal(image, ref_image.numpy()) and np.array_equal(label, ref_label.numpy())
            assert a.getstate() == b.getstate()
    _, label = ours.load(len(ours) - 1, random.Random(0))
    assert (label == 255).sum() == 128 * 28  # only the padding is ignored


def test_official_window_rule_on_real_sizes():
    for h, w in [(800, 800), (1000, 1200), (2000, 1408), (4000, 2710), (13000, 900), (100, 5000)]:
        official = [(y1, y2, x1, x2) for x1, y1, x2, y2 in sliding_window((h, w), (896, 896), 512).tolist()]
        assert factseg_windows(h, w) == official


def test_val_samples_and_normalisation(root):
    raw = ISAIDDataset(root, "val", raw=True)
    ref = ISAIDFolderReference(os.path.join(root, "val", "images"), os.path.join(root, "val", "masks"))
    image, label = raw[0]
    ref_image, ref_label, _ = ref[0]
    assert image.dtype == np.uint8 and image.shape == (180, 150, 3)
    assert np.array_equal(image, ref_image) and np.array_equal(label, ref_label)
    normalised, label64 = ISAIDDataset(root, "val")[0]
    mean = np.float32([123.675, 116.28, 103.53])
    std = np.float32([58.395, 57.12, 57.375])
    assert np.array_equal(normalised, ((image.astype(np.float32) - mean) / std).transpose(2, 0, 1))
    assert label64.dtype == np.int64 and np.array_equal(label64, label)
    assert NormalizePixels()(np.full((1, 1, 3), 255, np.uint8), None, None)[0].ravel().tolist() == \
        ((np.float32(255) - mean) / std).tolist()


def test_rot90_is_counter_clockwise_like_pillow():
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for k in (1, 2, 3):
        rotated, _ = RandomRotate90K([k])(array[..., None].repeat(3, 2), None, random.Random(0))
        assert np.array_equal(rotated[..., 0], np.array(Image.fromarray(array).rotate(90 * k, expand=True)))


def test_synthetic_generator_is_deterministic_and_in_layout(tmp_path):
    a = generate_isaid(tmp_path / "a", num_train=1, num_val=1, size=(96, 128), seed=7)
    b = generate_isaid(tmp_path / "b", num_train=1, num_val=1, size=(96, 128), seed=7)
    for split in ("train", "val"):
        for key in ("image", "mask", "instances"):
            with open(a["files"][split][0][key], "rb") as fa, open(b["files"][split][0][key], "rb") as fb:
                assert fa.read() == fb.read()
    mask = np.array(Image.open(a["files"]["val"][0]["mask"]))
    labels, report = decode_color_mask(mask)
    assert report.unknown == 0 and len(np.unique(labels)) >= 3
    assert os.path.basename(a["files"]["val"][0]["image"]) == "P0001.png"


def test_devkit_patch_tool(tmp_path):
    from tools.prepare_isaid_patches import devkit_windows, main

    assert devkit_windows(1000, 2000, 800, 200) == [(0, 800, 0, 800), (200, 1000, 0, 800), (0, 800, 600, 1400),
                                                      (200, 1000, 600, 1400), (0, 800, 1200, 2000),
                                                      (200, 1000, 1200, 2000)]
    src = generate_isaid(tmp_path / "src", num_train=1, num_val=0, sizes=[(90, 140)], num_objects=(3, 4))["root"]
    assert main(["--root", src, "--out", str(tmp_path / "out"), "--split", "train", "--patch", "64",
                 "--overlap", "16"]) == 0
    names = sorted(os.listdir(tmp_path / "out" / "train" / "images"))
    assert names == ["P0000_0_64_0_64.png", "P0000_0_64_48_112.png", "P0000_0_64_76_140.png",
                     "P0000_26_90_0_64.png", "P0000_26_90_48_112.png", "P0000_26_90_76_140.png"]
    patches = ISAIDDataset(str(tmp_path / "out"), "train", mode="val", raw=True)
    image, label = patches[0]
    full_image, full_label = ISAIDDataset(src, "train", mode="val", raw=True)[0]
    assert np.array_equal(image, full_image[:64, :64]) and np.array_equal(label, full_label[:64, :64])
