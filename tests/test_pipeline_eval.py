"""Evaluation protocols: window placement, scale sizes, flip, sliding windows and multi-scale against an
independent torch transcription of the official DANet MultiEvalModule; change-detection scoring."""

from __future__ import annotations

import json
import math

import numpy as np
import paddle
import pytest
import torch
import torch.nn.functional as TF
from pipeline_helpers import TinyCD

from paddle_models.engine.evaluator import (
    ChangeDetectionEvaluator,
    SegmentationEvaluator,
    SegProtocol,
    predict_scores,
    window_scores,
)
from rsrepro.metrics import BinaryConfusion, ConfusionMatrix, ThresholdSweep
from rsrepro.windows import (
    danet_padded_size,
    danet_scaled_size,
    danet_stride,
    danet_windows,
    factseg_windows,
    window_coverage,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------- geometry
def test_danet_windows_full_cityscapes_example():
    # scale 1, base 2048, crop 768: stride int(768*2/3) = 512 single scale, 384 multi-scale
    assert danet_scaled_size(1024, 2048, 2048, 1.0) == (1024, 2048)
    assert danet_stride(768, 1) == (512, 512) and danet_stride(1024, 8) == (512, 512)
    windows = danet_windows(1024, 2048, 768, 512)
    assert [(w[0], w[1]) for w in windows[::4]] == [(0, 768), (512, 1024)]
    assert [(w[2], w[3]) for w in windows[:4]] == [(0, 768), (512, 1280), (1024, 1792), (1536, 2048)]


def test_danet_scaled_size_rounding_and_orientation():
    assert danet_scaled_size(1024, 2048, 2048, 0.75) == (768, 1536)
    assert danet_scaled_size(1024, 2048, 2048, 2.2) == (2253, 4506)  # ceil(4505.6); 2253 = int(2252.8 + .5)
    assert danet_scaled_size(37, 30, 40, 1.0) == (40, 32)  # portrait: long side is the height; 32.43 -> 32
    assert danet_scaled_size(30, 30, 10, 1.5) == (15, 15)


def test_danet_windows_clip_and_cover():
    ph, pw = danet_padded_size(20, 50, 24)
    assert (ph, pw) == (24, 50)
    windows = danet_windows(ph, pw, 24, 16)
    assert windows == [(0, 24, 0, 24), (0, 24, 16, 40), (0, 24, 32, 50)]  # last clipped at 50 (18 wide)
    cover = np.array(window_coverage(ph, pw, windows))
    assert cover.min() == 1 and cover.max() == 2
    with pytest.raises(ValueError, match="pad it first"):
        danet_windows(20, 50, 24, 16)


def test_factseg_windows_shift_inward_and_small_images():
    assert factseg_windows(800, 800) == [(0, 800, 0, 800)]
    axis = sorted({(w[2], w[3]) for w in factseg_windows(896, 2000)})
    assert axis == [(0, 896), (512, 1408), (1024, 1920), (1104, 2000)]  # last shifted inward to end at 2000
    assert {(w[0], w[1]) for w in factseg_windows(1000, 1000)} == {(0, 896), (104, 1000)}
    for h, w in ((1000, 2000), (700, 3000), (4000, 900)):
        cover = np.array(window_coverage(h, w, factseg_windows(h, w)))
        assert cover.min() >= 1


# ------------------------------------------------------------------------- the official reference
class _Conv:
    """The same 3x3 conv (asymmetric kernel, so flipping matters) in both frameworks."""

    def __init__(self, classes: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weight = rng.normal(0, 0.5, (classes, 3, 3, 3)).astype(np.float32)
        self.bias = rng.normal(0, 0.5, classes).astype(np.float32)
        self.paddle = paddle.nn.Conv2D(3, classes, 3, padding=1)
        self.paddle.weight.set_value(self.weight)
        self.paddle.bias.set_value(self.bias)
        self.calls = 0

    def paddle_model(self, x):  # DANet-like: a tuple of outputs, the first evaluated
        self.calls += 1
        out = self.paddle(x)
        return out, out * 0.5

    def torch_model(self, x):
        return TF.conv2d(x, torch.from_numpy(self.weight), torch.from_numpy(self.bias), padding=1)


def _pad_image(img, crop):
    b, c, h, w = img.shape
    padh, padw = max(crop - h, 0), max(crop - w, 0)
    values = -np.array(MEAN) / np.array(STD)
    out = torch.empty(b, c, h + padh, w + padw)
    for i in range(c):
        out[:, i] = TF.pad(img[:, i], (0, padw, 0, padh), value=float(values[i]))
    return out


def _module_inference(model, image, flip):
    output = model(image)
    if flip:
        output = output + torch.flip(model(torch.flip(image, [3])), [3])
    return output.exp()


def _official_multi_eval(model, image, scales, base_size, crop, flip):
    """Transcription of the official MultiEvalModule.forward (2019 tree) for a square crop."""
    batch, _, h, w = image.shape
    stride = int(crop * (2.0 / 3.0 if len(scales) == 1 else 1.0 / 2.0))
    scores = None
    for scale in scales:
        long_size = int(math.ceil(base_size * scale))
        if h > w:
            height, width = long_size, int(1.0 * w * long_size / h + 0.5)
            short_size = width
        else:
            width, height = long_size, int(1.0 * h * long_size / w + 0.5)
            short_size = height
        cur = TF.interpolate(image, (height, width), mode="bilinear", align_corners=True)
        if long_size <= crop:
            outputs = _module_inference(model, _pad_image(cur, crop), flip)[:, :, :height, :width]
        else:
            pad = _pad_image(cur, crop) if short_size < crop else cur
            _, _, ph, pw = pad.shape
            h_grids = int(math.ceil(1.0 * (ph - crop) / stride)) + 1
            w_grids = int(math.ceil(1.0 * (pw - crop) / stride)) + 1
            outputs, count = None, torch.zeros(batch, 1, ph, pw)
            for idh in range(h_grids):
                for idw in range(w_grids):
                    h0, w0 = idh * stride, idw * stride
                    h1, w1 = min(h0 + crop, ph), min(w0 + crop, pw)
                    out = _module_inference(model, _pad_image(pad[:, :, h0:h1, w0:w1], crop), flip)
                    if outputs is None:
                        outputs = torch.zeros(batch, out.shape[1], ph, pw)
                    outputs[:, :, h0:h1, w0:w1] += out[:, :, : h1 - h0, : w1 - w0]
                    count[:, :, h0:h1, w0:w1] += 1
            outputs = (outputs / count)[:, :, :height, :width]
        score = TF.interpolate(outputs, (h, w), mode="bilinear", align_corners=True)
        scores = score if scores is None else scores + score
    return scores


def _protocol(**kw):
    return SegProtocol(pad_value=tuple(-m / s for m, s in zip(MEAN, STD)), **kw)


@pytest.mark.parametrize("shape,scales,flip", [
    ((1, 3, 30, 37), (1.0,), False),            # single scale: 2x2 windows, stride 16, no padding
    ((1, 3, 30, 37), (1.0,), True),             # + flip
    ((2, 3, 37, 30), (0.5, 1.0, 1.5), True),    # portrait, batch 2, multi-scale: pad-only / slide / slide
    ((1, 3, 12, 40), (0.75, 1.25), False),      # short side < crop: padded before sliding
])
def test_slide_protocol_matches_official_multi_eval(shape, scales, flip):
    conv = _Conv()
    image = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    ours = predict_scores(conv.paddle_model, paddle.to_tensor(image),
                          _protocol(mode="slide", scales=scales, flip=flip, base_size=40, crop_size=24)).numpy()
    ref = _official_multi_eval(conv.torch_model, torch.from_numpy(image), scales, 40, 24, flip).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-6)
    assert (ours.argmax(1) == ref.argmax(1)).mean() == 1.0


def test_flip_is_logit_sum_then_exp():
    conv = _Conv()
    x = paddle.to_tensor(np.random.default_rng(2).normal(0, 1, (1, 3, 8, 9)).astype(np.float32))
    got = window_scores(conv.paddle_model, x, _protocol(flip=True)).numpy()
    logits = conv.paddle(x).numpy()
    flipped = conv.paddle(paddle.flip(x, [3])).numpy()[..., ::-1]
    np.testing.assert_allclose(got, np.exp(logits + flipped), rtol=1e-5)
    assert not np.allclose(flipped, logits, atol=1e-3)  # the kernel is not symmetric: flip matters


def test_whole_mode_scale_resize_and_window_counts():
    conv = _Conv()
    image = np.random.default_rng(3).normal(0, 1, (1, 3, 20, 30)).astype(np.float32)
    x = paddle.to_tensor(image)
    # whole image at scale 1 without base size: exactly exp(logits) of the image itself
    got = predict_scores(conv.paddle_model, x, _protocol()).numpy()
    np.testing.assert_allclose(got, np.exp(conv.paddle(x).numpy()), rtol=1e-6)
    # scale 0.5 (base = own long side 30 -> 15 x 10): resized, run, resized back (align_corners=True)
    got = predict_scores(conv.paddle_model, x, _protocol(scales=(0.5,))).numpy()
    small = TF.interpolate(torch.from_numpy(image), (10, 15), mode="bilinear", align_corners=True)
    ref = TF.interpolate(conv.torch_model(small).exp(), (20, 30), mode="bilinear", align_corners=True)
    np.testing.assert_allclose(got, ref.numpy(), rtol=2e-5, atol=1e-6)
    # sliding: number of forward passes = windows x (1 + flip)
    conv.calls = 0
    predict_scores(conv.paddle_model, x, _protocol(mode="slide", crop_size=16, flip=True))
    assert conv.calls == 2 * len(danet_windows(20, 30, 16, danet_stride(16, 1)))


def test_factseg_rule_averages_windows():
    conv = _Conv()
    image = np.random.default_rng(4).normal(0, 1, (1, 3, 20, 44)).astype(np.float32)
    proto = _protocol(mode="slide", crop_size=16, stride=12, window_rule="factseg", pad_multiple=8, score="softmax")
    got = predict_scores(conv.paddle_model, paddle.to_tensor(image), proto).numpy()
    # independent: each window (16 x 16 here, no padding needed) softmaxed, summed, divided by count
    total = np.zeros((1, 4, 20, 44))
    count = np.zeros((20, 44))
    for y0, y1, x0, x1 in factseg_windows(20, 44, 16, 12):
        out = TF.softmax(conv.torch_model(torch.from_numpy(image[:, :, y0:y1, x0:x1])), dim=1).numpy()
        total[:, :, y0:y1, x0:x1] += out
        count[y0:y1, x0:x1] += 1
    np.testing.assert_allclose(got, total / count, rtol=1e-5, atol=1e-6)


def test_segmentation_evaluator_matches_bincount(tmp_path):
    conv = _Conv(classes=4)
    rng = np.random.default_rng(5)
    samples = [(rng.normal(0, 1, (3, 12, 16)).astype(np.float32), rng.integers(0, 4, (12, 16)).astype(np.int64))
               for _ in range(3)]
    samples[0][1][:2] = 255

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = conv.paddle

        def forward(self, x):
            return conv.paddle_model(x)

    ev = SegmentationEvaluator(_protocol(flip=True), 4, 255, ["a", "b", "c", "d"])
    summary = ev.evaluate(Net(), samples, progress=False)
    matrix = np.zeros((4, 4), np.int64)
    for image, label in samples:
        scores = window_scores(conv.paddle_model, paddle.to_tensor(image[None]), _protocol(flip=True))
        pred = scores.numpy().argmax(1)[0]
        keep = label != 255
        matrix += np.bincount(label[keep] * 4 + pred[keep], minlength=16).reshape(4, 4)
    np.testing.assert_array_equal(summary["confusion_matrix"], matrix)
    assert summary["miou"] == pytest.approx(ConfusionMatrix.from_matrix(matrix).miou())
    assert summary["samples"] == 3 and summary["protocol"]["flip"] is True


# ------------------------------------------------------------------------------ change detection
class _CDData:
    def __init__(self, n=3, size=10, seed=0):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            t0 = rng.normal(0, 1, (3, size, size)).astype(np.float32)
            t1 = t0 + (rng.random((1, size, size)) < 0.3) * 1.5
            label = (np.abs(t1 - t0).sum(0) > 0).astype(np.int64)
            label[0, :3] = 255
            self.items.append((t0, t1.astype(np.float32), label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_change_detection_softmax_sweep_fixed_and_files(tmp_path):
    paddle.seed(0)
    model = TinyCD()
    data = _CDData()
    ev = ChangeDetectionEvaluator(score="softmax", output_index=0, thresholds={"start": 0, "stop": 1, "num": 11},
                                  decision="argmax")
    result = ev.evaluate(model, data, progress=False, out_dir=str(tmp_path / "cd"))
    sweep, argmax = ThresholdSweep(np.linspace(0, 1, 11)), BinaryConfusion()
    for t0, t1, label in data.items:
        logits = model(paddle.to_tensor(t0[None]), paddle.to_tensor(t1[None]))[0].numpy()
        prob = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
        sweep.update(prob, label[None])
        argmax.update(logits.argmax(1), label[None])
    expected = sweep.result()
    np.testing.assert_array_equal(result["sweep"]["tp"], expected["tp"])
    np.testing.assert_array_equal(result["sweep"]["fp"], expected["fp"])
    assert result["sweep"]["max_f"] == pytest.approx(expected["max_f"])
    assert result["fixed"]["tp"] == argmax.counts()["tp"] and result["fixed"]["decision"] == "argmax"
    written = json.loads((tmp_path / "cd" / "metric.json").read_text())
    assert written["sweep"]["max_f"] == pytest.approx(expected["max_f"]) and len(written["sweep"]["thresholds"]) == 11
    assert (tmp_path / "cd" / "pr_curve.png").stat().st_size > 1000


def test_change_detection_l2_distance_and_best_threshold():
    class Pair(paddle.nn.Layer):  # DASNet-like: outputs[index] is a [t0, t1] pair of embeddings
        def forward(self, t0, t1):
            return ([t0, t1], [t0 * 0, t1 * 0])

    data = _CDData(n=2, seed=1)
    ev = ChangeDetectionEvaluator(score="l2_distance", output_index=0, thresholds="dasnet_v2")
    result = ev.evaluate(Pair(), data, progress=False)
    sweep = ThresholdSweep(np.linspace(0, 2.2, 96))
    for t0, t1, label in data.items:
        sweep.update(np.sqrt(((t0 - t1) ** 2).sum(0))[None], label[None])
    expected = sweep.result()
    assert result["sweep"]["best_threshold"] == expected["best_threshold"]
    i = expected["best_index"]
    assert result["fixed"]["tp"] == expected["tp"][i] and "best of the sweep" in result["fixed"]["decision"]
    with pytest.raises(ValueError, match="decision 'argmax' needs logits"):
        ChangeDetectionEvaluator(score="l2_distance", output_index=0, decision="argmax").evaluate(
            Pair(), data, progress=False)
