"""Cityscapes data pipeline: synthetic layout, label encodings, transforms, parity with the torch
reference, and a clear DatasetError for every kind of bad input."""

from __future__ import annotations

import os
import random
import re
import shutil
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from rsrepro.data import CityscapesDataset, DatasetError, TransformConfigError, read_image, read_label
from rsrepro.data.cityscapes import (
    CLASS_NAMES,
    LABEL_ID_COLORS,
    LABEL_ID_TO_TRAIN_ID,
    LABELS,
    PALETTE,
    find_cityscapes_pairs,
)
from rsrepro.data.synthetic import generate_cityscapes, main
from rsrepro.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRANSFORMS,
    Normalize,
    build_transforms,
    danet_train_transforms,
    val_transforms,
)

SIZE = (64, 128)  # h, w of the generated test data

# datasets.md: labelId -> trainId; every other id -> 255.
SPEC_TABLE = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
              26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("city_labelids")
    return generate_cityscapes(root, num_train=4, num_val=2, size=SIZE, seed=0, label_type="labelIds")


@pytest.fixture(scope="module")
def city_train_ids(tmp_path_factory):
    root = tmp_path_factory.mktemp("city_trainids")
    return generate_cityscapes(root, num_train=4, num_val=2, size=SIZE, seed=0, label_type="trainIds")


def small_city(tmp_path, **kwargs):
    """A 2-image copy to break on purpose."""
    options = dict(num_train=2, num_val=0, size=(32, 64), seed=1, write_lists=False)
    options.update(kwargs)
    return generate_cityscapes(tmp_path / "city", **options)


# --------------------------------------------------------------------------------------------------
# Synthetic generator
# --------------------------------------------------------------------------------------------------


def test_generator_writes_real_layout_and_encodings(city):
    root = city["root"]
    pattern = re.compile(
        r"^(leftImg8bit|gtFine)/(train|val)/(aachen|bremen)/\3_\d{6}_\d{6}_"
        r"(leftImg8bit|gtFine_labelIds|gtFine_color|gtFine_instanceIds)\.png$"
    )
    written = []
    for dirpath, _, names in os.walk(root):
        written += [os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/") for n in names]
    pngs = sorted(p for p in written if p.endswith(".png"))
    assert len(pngs) == 6 * 4 and all(pattern.match(p) for p in pngs), pngs
    assert sorted(p for p in written if p.endswith(".txt")) == ["train_fine.txt", "val_fine.txt"]

    seen_ids = set()
    for item in city["files"]["train"] + city["files"]["val"]:
        image, label = Image.open(item["image"]), Image.open(item["labelIds"])
        color, instances = Image.open(item["color"]), Image.open(item["instanceIds"])
        assert (image.mode, label.mode, color.mode) == ("RGB", "L", "RGBA")
        assert instances.mode.startswith("I")  # 16-bit
        assert image.size == label.size == color.size == instances.size == (SIZE[1], SIZE[0])
        ids = np.array(label)
        assert np.array_equal(np.array(color)[..., :3], LABEL_ID_COLORS[ids])
        assert (np.array(color)[..., 3] == 255).all()
        inst = np.array(instances).astype(np.int64)
        assert np.array_equal(np.where(inst >= 1000, inst // 1000, inst), ids)
        seen_ids |= set(np.unique(ids).tolist())
    assert seen_ids <= set(range(34))
    assert {1, 2} <= seen_ids  # ego vehicle, rectification border: ignore-mapped ids are present
    assert len({SPEC_TABLE[i] for i in seen_ids if i in SPEC_TABLE}) >= 8

    lines = open(os.path.join(root, "train_fine.txt")).read().splitlines()
    assert lines[0] == (
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png\t"
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    )


def test_generator_train_ids_variant_and_determinism(city, city_train_ids):
    for split in ("train", "val"):
        for a, b in zip(city["files"][split], city_train_ids["files"][split]):
            assert "labelIds" not in b and b["trainIds"].endswith("_gtFine_trainIds.png")
            assert open(a["image"], "rb").read() == open(b["image"], "rb").read()  # same seed, same bytes
            train_ids = np.array(Image.open(b["trainIds"]))
            assert Image.open(b["trainIds"]).mode == "L"
            assert np.array_equal(train_ids, LABEL_ID_TO_TRAIN_ID[np.array(Image.open(a["labelIds"]))])
    assert "trainIds.png" in open(os.path.join(city_train_ids["root"], "val_fine.txt")).read()


def test_generator_speed_and_command_line(tmp_path, capsys):
    start = time.perf_counter()
    summary = main(["--dataset", "cityscapes", "--out", str(tmp_path / "cli")])
    seconds = time.perf_counter() - start
    assert {k: len(v) for k, v in summary["files"].items()} == {"train": 8, "val": 4}
    assert np.array(Image.open(summary["files"]["val"][0]["image"])).shape == (128, 256, 3)
    assert "train: 8, val: 4" in capsys.readouterr().out
    assert seconds < 1.0, f"12 images of 128x256 took {seconds:.2f} s"
    with pytest.raises(SystemExit):
        main(["--dataset", "nope", "--out", str(tmp_path / "x")])


def test_synthetic_scenes_are_learnable(city):
    """A nearest-class-mean colour classifier fitted on train already labels most val pixels."""

    def pixels(split):
        xs, ys = [], []
        for item in city["files"][split]:
            xs.append(np.array(Image.open(item["image"])).reshape(-1, 3).astype(np.float32))
            ys.append(LABEL_ID_TO_TRAIN_ID[np.array(Image.open(item["labelIds"]))].ravel())
        return np.concatenate(xs), np.concatenate(ys)

    x, y = pixels("train")
    xv, yv = pixels("val")
    classes = np.array([c for c in range(19) if (y == c).any()])
    means = np.stack([x[y == c].mean(0) for c in classes])
    pred = classes[np.argmin(((xv[:, None] - means[None]) ** 2).sum(-1), axis=1)]
    keep = yv != 255
    assert (pred[keep] == yv[keep]).mean() > 0.8


# --------------------------------------------------------------------------------------------------
# Constants and label mapping
# --------------------------------------------------------------------------------------------------


def test_label_id_table_matches_spec():
    expected = np.array([SPEC_TABLE.get(i, 255) for i in range(256)], dtype=np.uint8)
    assert np.array_equal(LABEL_ID_TO_TRAIN_ID, expected)
    assert not LABEL_ID_TO_TRAIN_ID.flags.writeable
    assert [entry[0] for entry in LABELS] == list(range(34))
    assert all(LABEL_ID_TO_TRAIN_ID[label_id] == train_id for label_id, _, train_id, _ in LABELS)
    assert len(CLASS_NAMES) == len(PALETTE) == 19
    assert (CLASS_NAMES[0], CLASS_NAMES[10], CLASS_NAMES[18]) == ("road", "sky", "bicycle")
    assert (PALETTE[0], PALETTE[10], PALETTE[13]) == ((128, 64, 128), (70, 130, 180), (0, 0, 142))


def test_dataset_reads_both_label_types_and_list_files(city, city_train_ids):
    a = CityscapesDataset(city["root"], "val")
    b = CityscapesDataset(city_train_ids["root"], "val")
    c = CityscapesDataset(city_train_ids["root"], "val", list_file="val_fine.txt")
    assert [p.kind for p in a.pairs] == ["labelIds"] * 2 and [p.kind for p in b.pairs] == ["trainIds"] * 2
    assert b.files == c.files and a.files == sorted(a.files)
    assert a.files[0][1].endswith("aachen_000000_000019_gtFine_labelIds.png")
    for i in range(len(a)):
        (xa, ya), (xb, yb), (_, yc) = a[i], b[i], c[i]
        assert xa.dtype == np.float32 and xa.shape == (3,) + SIZE and ya.dtype == np.int64
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(yb, yc)
        assert set(np.unique(ya)) <= set(range(19)) | {255} and (ya == 255).any()
    with pytest.raises(DatasetError, match="label_type"):
        CityscapesDataset(city["root"], "val", label_type="colour")
    with pytest.raises(DatasetError, match="no label"):  # labelIds only were written
        CityscapesDataset(city["root"], "val", label_type="trainIds")


def test_dataset_seed_gives_reproducible_epochs(city):
    options = dict(base_size=64, crop_size=48, seed=3)
    first = CityscapesDataset(city["root"], "train", **options)
    again = CityscapesDataset(city["root"], "train", **options)
    assert np.array_equal(first[1][0], again[1][0])
    first.set_epoch(1)
    assert not np.array_equal(first[1][0], again[1][0])


# --------------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------------


def test_train_transform_shapes_padding_and_draw_order():
    rng_image = np.random.default_rng(0)
    image = rng_image.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    label = rng_image.integers(0, 19, (64, 128), dtype=np.uint8)
    # Short side 0.5 * 40 = 20 < crop 48: resized to 20x40, padded to 48x48.
    transform = danet_train_transforms(base_size=40, crop_size=48, scale_range=(0.5, 0.5))
    rng = random.Random(7)
    out, target = transform(image, label, rng)
    assert out.shape == (3, 48, 48) and out.dtype == np.float32
    assert target.shape == (48, 48) and target.dtype == np.int64
    assert (target[20:] == 255).all() and (target[:, 40:] == 255).all()
    assert (target[:20, :40] != 255).all()
    black = (-np.asarray(IMAGENET_MEAN, np.float32) / np.asarray(IMAGENET_STD, np.float32))[:, None]
    assert np.array_equal(out[:, 20:].reshape(3, -1), np.broadcast_to(black, (3, 28 * 48)))
    replay = random.Random(7)
    replay.random(), replay.randint(20, 20), replay.randint(0, 0), replay.randint(0, 0)
    assert rng.getstate() == replay.getstate()  # flip, scale, crop x, crop y: nothing else


def test_flip_and_crop_follow_the_documented_draws():
    """Pixel values encode (y, x): the output shows which flip and crop offsets were used."""
    ys, xs = np.mgrid[0:40, 0:90]
    image = np.stack([ys, xs, np.zeros_like(xs)], axis=-1).astype(np.uint8)
    label = (xs % 19).astype(np.uint8)
    # scale_range None: short side = base_size = 40, i.e. no resize and no scale draw.
    transform = build_transforms(
        [{"type": "RandomHorizontalFlip"}, {"type": "RandomScale", "base_size": 40, "scale_range": None},
         {"type": "RandomCrop", "crop_size": [32, 24]}]  # fmt: skip
    )
    for seed in range(6):
        replay = random.Random(seed)
        flipped = replay.random() < 0.5
        x0, y0 = replay.randint(0, 90 - 24), replay.randint(0, 40 - 32)
        out, target = transform(image, label, random.Random(seed))
        source_x = (89 - xs[0]) if flipped else xs[0]
        assert np.array_equal(out[:, :, 1], np.broadcast_to(source_x[x0 : x0 + 24], (32, 24)))
        assert np.array_equal(out[:, 0, 0], np.arange(y0, y0 + 32))
        assert np.array_equal(target, (out[:, :, 1] % 19))


def test_val_transform_and_builder_errors():
    image = np.full((30, 60, 3), 255, np.uint8)
    out, target = val_transforms()(image, np.zeros((30, 60), np.uint8))
    assert out.shape == (3, 30, 60) and target.dtype == np.int64
    expected = (1.0 - np.float32(IMAGENET_MEAN[0])) / np.float32(IMAGENET_STD[0])
    assert np.allclose(out[0], expected, rtol=0, atol=1e-6)
    out, _ = val_transforms(base_size=20, crop_size=20)(image, None)
    assert out.shape == (3, 20, 20)

    config = {"RandomHorizontalFlip": {"prob": 1.0}, "Normalize": None}
    pixels = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    flipped, _ = build_transforms(config)(pixels, None, random.Random(0))
    assert flipped[0, 0, 0] > flipped[0, 0, 1]
    preset = build_transforms(
        [{"type": "DANetTrain", "base_size": 32, "crop_size": 16, "gaussian_blur": True}]
    )
    assert [type(t).__name__ for t in preset.transforms][-2:] == ["RandomGaussianBlur", "Normalize"]
    with pytest.raises(TransformConfigError, match=r"transform #1 \(RandomFlip\).*RandomHorizontalFlip"):
        build_transforms([{"type": "Normalize"}, {"type": "RandomFlip"}])
    with pytest.raises(TransformConfigError, match=r"RandomCrop.*unknown argument.*'size'"):
        build_transforms([{"type": "RandomCrop", "size": 32}])
    with pytest.raises(TransformConfigError, match=r"prob must be in \[0, 1\]"):
        build_transforms({"RandomGaussianBlur": {"prob": 3}})
    with pytest.raises(TransformConfigError, match="Normalize must be the last"):
        build_transforms(["Normalize", "RandomHorizontalFlip"])
    assert {"DANetTrain", "Val", "RandomScale", "RandomColorJitter"} <= set(TRANSFORMS.names())
    assert isinstance(build_transforms(["Normalize"]).transforms[0], Normalize)


# --------------------------------------------------------------------------------------------------
# Parity with the official-style torch reference
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extras", [False, True], ids=["plain", "blur+jitter"])
@pytest.mark.parametrize("which", ["labelIds", "trainIds"])
def test_train_pipeline_matches_torch_reference(city, city_train_ids, which, extras):
    from torch_ref.datasets import CityscapesSegmentation

    root = (city if which == "labelIds" else city_train_ids)["root"]
    # base 48 -> short side 36..96 for 64x128 images; crop 56 pads whenever the short side < 56.
    ours = CityscapesDataset(
        root, "train",
        transform=danet_train_transforms(
            base_size=48, crop_size=56, gaussian_blur=extras, color_jitter=extras
        ),
    )  # fmt: skip
    ref = CityscapesSegmentation(root, "train", base_size=48, crop_size=56, gaussian_blur=extras,
                                 color_jitter=extras)  # fmt: skip
    worst, padded = 0.0, 0
    for index in range(len(ours)):
        for seed in range(6):
            ours_rng, ref_rng = random.Random(seed), random.Random(seed)
            image, label = ours.load(index, ours_rng)
            ref_image, ref_label = ref.load(index, ref_rng)
            assert ours_rng.getstate() == ref_rng.getstate()
            assert np.array_equal(label, ref_label.numpy())
            worst = max(worst, float(np.abs(image - ref_image.numpy()).max()))
            padded += int((label == 255).sum() > 0)
    assert worst == 0.0
    assert padded > 0


@pytest.mark.parametrize("size", [(45, 97), (70, 33)], ids=["landscape", "portrait"])
def test_odd_sizes_match_torch_reference(tmp_path, size):
    """Sizes whose resized long side is fractional, so the truncation rule and both branches count."""
    from torch_ref.datasets import CityscapesSegmentation

    root = generate_cityscapes(tmp_path / "odd", num_train=2, num_val=0, size=size, seed=5)["root"]
    ours = CityscapesDataset(root, "train", transform=danet_train_transforms(base_size=40, crop_size=36))
    ref = CityscapesSegmentation(root, "train", base_size=40, crop_size=36)
    shapes = set()
    for index in range(len(ours)):
        for seed in range(8):
            image, label = ours.load(index, random.Random(seed))
            ref_image, ref_label = ref.load(index, random.Random(seed))
            assert np.array_equal(image, ref_image.numpy()) and np.array_equal(label, ref_label.numpy())
        shapes.add(ours.read_pair(index)[0].shape)
    val = CityscapesDataset(root, "train", transform=val_transforms(base_size=30, crop_size=30))
    ref_val = CityscapesSegmentation(root, "train", mode="val", crop_size=30)
    assert np.array_equal(val.load(0, random.Random(0))[0], ref_val.load(0, random.Random(0))[0].numpy())
    assert shapes == {size + (3,)}


def test_val_pipeline_matches_torch_reference(city):
    from torch_ref.datasets import CityscapesSegmentation

    ours = CityscapesDataset(city["root"], "val")
    ref = CityscapesSegmentation(city["root"], "val", mode="testval")
    for index in range(len(ours)):
        (image, label), (ref_image, ref_label) = ours[index], ref[index]
        assert np.array_equal(image, ref_image.numpy()) and np.array_equal(label, ref_label.numpy())
    # The official quick validation: short side -> crop, centre crop.
    ours = CityscapesDataset(city["root"], "val", transform=val_transforms(base_size=40, crop_size=40))
    ref = CityscapesSegmentation(city["root"], "val", mode="val", crop_size=40)
    for index in range(len(ours)):
        (image, label), (ref_image, ref_label) = ours[index], ref[index]
        assert image.shape == (3, 40, 40)
        assert np.array_equal(image, ref_image.numpy()) and np.array_equal(label, ref_label.numpy())
    official = CityscapesSegmentation(city["root"], "val", mode="testval", ignore_index=-1)
    assert official[0][1].min() == -1


# --------------------------------------------------------------------------------------------------
# Bad input: a DatasetError naming the file
# --------------------------------------------------------------------------------------------------


def _first(summary, key):
    return summary["files"]["train"][0][key]


def _load_all(root, **kwargs):
    dataset = CityscapesDataset(root, "train", mode="val", **kwargs)
    for index in range(len(dataset)):
        dataset[index]


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _save(array, path):
    Image.fromarray(array).save(path)


BREAKERS = {
    "truncated image": ("image", _truncate, "truncated or corrupt"),
    "truncated label": ("labelIds", _truncate, "truncated or corrupt"),
    "zero-byte image": ("image", lambda p: open(p, "wb").close(), r"empty \(0 bytes\)"),
    "not an image": ("image", lambda p: open(p, "wb").write(b"not a png" * 10), "not a readable image"),
    "grayscale image": ("image", lambda p: _save(np.zeros((32, 64), np.uint8), p), "found grayscale"),
    "RGBA image": ("image", lambda p: _save(np.zeros((32, 64, 4), np.uint8), p), r"RGBA \(4 channels\)"),
    "colour label": ("labelIds", lambda p: _save(np.zeros((32, 64, 3), np.uint8), p), "single-channel"),
    "label size": ("labelIds", lambda p: _save(np.zeros((16, 64), np.uint8), p), r"size 64x16 .*differs"),
    "labelId 40": ("labelIds", lambda p: _save(np.full((32, 64), 40, np.uint8), p), r"values \[40\]"),
    "16-bit label": ("labelIds", lambda p: _save(np.full((32, 64), 26001, np.uint16), p), "instance-id map"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_bad_files_raise_dataset_error_naming_the_file(tmp_path, case):
    key, breaker, message = BREAKERS[case]
    summary = small_city(tmp_path)
    target = _first(summary, key)
    breaker(target)
    with pytest.raises(DatasetError, match=message) as excinfo:
        _load_all(summary["root"])
    assert target in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_bad_train_ids_value_and_missing_label(tmp_path):
    summary = small_city(tmp_path, label_type="trainIds")
    target = _first(summary, "trainIds")
    _save(np.full((32, 64), 19, np.uint8), target)
    with pytest.raises(DatasetError, match=r"values \[19\] outside 0..18") as excinfo:
        _load_all(summary["root"])
    assert target in str(excinfo.value)
    os.remove(target)
    with pytest.raises(DatasetError, match="1 image.* have no label") as excinfo:
        CityscapesDataset(summary["root"], "train")
    assert _first(summary, "image") in str(excinfo.value) and target in str(excinfo.value)


def test_missing_folders_and_empty_split(tmp_path):
    summary = small_city(tmp_path)
    root = summary["root"]
    with pytest.raises(DatasetError, match="root folder not found") as excinfo:
        CityscapesDataset(os.path.join(root, "nope"), "train")
    assert os.path.join(root, "nope") in str(excinfo.value)
    with pytest.raises(DatasetError, match="image folder for split 'val' not found"):
        CityscapesDataset(root, "val")
    official_root = str(tmp_path / "cityscapes")  # the official code's extra 'cityscapes' level
    os.rename(root, official_root)
    with pytest.raises(DatasetError, match=re.escape(f"pass root={official_root}")):
        CityscapesDataset(str(tmp_path), "train")
    root = official_root
    for city in os.listdir(os.path.join(root, "leftImg8bit", "train")):
        shutil.rmtree(os.path.join(root, "leftImg8bit", "train", city))
    with pytest.raises(DatasetError, match=r"no Cityscapes images .*\*_leftImg8bit\.png"):
        find_cityscapes_pairs(root, "train")


def test_list_file_errors_name_file_and_line(tmp_path):
    summary = small_city(tmp_path, write_lists=True)
    root = summary["root"]
    list_file = os.path.join(root, "train_fine.txt")
    good = open(list_file).read().splitlines()
    open(list_file, "w").write(good[0] + "\n\n" + "only-one-field.png\n")
    expected = f"{list_file}:3: expected '<image path><TAB><label path>'"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        CityscapesDataset(root, "train", list_file=list_file)
    open(list_file, "w").write(good[0].replace("000000_000019_left", "000099_000019_left") + "\n")
    with pytest.raises(DatasetError, match=re.escape(f"{list_file}:1: image file not found")):
        CityscapesDataset(root, "train", list_file=list_file)
    open(list_file, "w").write(good[0].replace("_gtFine_labelIds.png", "_gtFine_color.png") + "\n")
    with pytest.raises(DatasetError, match="cannot tell the label encoding"):
        CityscapesDataset(root, "train", list_file=list_file)


def test_reading_helpers(tmp_path, monkeypatch):
    summary = small_city(tmp_path)
    image_path, label_path = _first(summary, "image"), _first(summary, "labelIds")
    assert read_image(image_path).shape == (32, 64, 3)
    # A palette label is read as its indices.
    indices = read_label(label_path)
    palette_path = str(tmp_path / "palette.png")
    picture = Image.fromarray(indices, mode="L").convert("P")
    picture.putpalette([v for i in range(256) for v in (i, 0, 0)])
    picture.save(palette_path)
    assert Image.open(palette_path).mode == "P" and np.array_equal(read_label(palette_path), indices)
    # With Pillow's LOAD_TRUNCATED_IMAGES switched on, a truncated file is still refused.
    _truncate(image_path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DatasetError, match="truncated"):
        read_image(image_path)
    with pytest.raises(DatasetError, match="file not found"):
        read_label(str(tmp_path / "missing.png"))
    # convert=True behaves like the official .convert('RGB'), with a warning naming the file.
    gray_path = str(tmp_path / "gray.png")
    _save(np.full((4, 4), 9, np.uint8), gray_path)
    with pytest.warns(UserWarning, match="gray.png"):
        assert (read_image(gray_path, convert=True) == 9).all()
    shutil.rmtree(summary["root"])
