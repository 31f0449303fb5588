"""FactSeg sliding-window evaluation: the official window rule, streaming == full canvas, padding,
metrics with devkit names, and the memory bound of the streaming accumulator."""

from __future__ import annotations

import tracemalloc

import numpy as np
import paddle
import pytest

import rsrepro.factseg_windows as old_names
from paddle_models.engine.factseg_eval import FactSegSlidingWindow, evaluate_isaid, format_iou_table
from rsrepro.windows import WINDOW_RULES, factseg_window_rows, factseg_windows
from rsrepro.windows import factseg_axis_windows as axis_windows
from rsrepro.windows import factseg_max_coverage as max_coverage
from torch_ref.datasets.isaid import sliding_window


class TinyScores(paddle.nn.Layer):
    """A cheap stand-in giving 16 non-negative per-pixel class scores (the merge treats them as the fused
    probabilities; a softmax over the class axis costs ~0.4 s per 896 window on this CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 16, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * y


@pytest.fixture(scope="module")
def tiny():
    paddle.seed(0)
    model = TinyScores()
    model.eval()
    return model


def test_window_rule_equals_official_one_implementation():
    rng = np.random.RandomState(0)
    sizes = [(800, 800), (896, 897), (1408, 1920), (2000, 1000)] + [tuple(rng.randint(50, 5000, 2)) for _ in range(30)]
    for h, w in sizes:
        official = [(y1, y2, x1, x2) for x1, y1, x2, y2 in sliding_window((h, w), (896, 896), 512).tolist()]
        assert factseg_windows(h, w) == official
    for h, w, k, s in [(250, 333, 96, 40), (64, 200, 64, 32), (37, 91, 16, 5)]:  # small windows, as the tests use
        official = [(y1, y2, x1, x2) for x1, y1, x2, y2 in sliding_window((h, w), (k, k), s).tolist()]
        assert factseg_windows(h, w, k, s) == official
    # the engine's rule table, the training windows and the old module names are this one function
    assert WINDOW_RULES["factseg"] is factseg_windows and old_names.factseg_windows is factseg_windows
    assert old_names.axis_windows is axis_windows and old_names.window_rows is factseg_window_rows
    import rsrepro.data.isaid

    assert rsrepro.data.isaid.factseg_windows is factseg_windows
    assert axis_windows(800) == [(0, 800)]
    assert axis_windows(1000) == [(0, 896), (104, 1000)]
    assert axis_windows(2000) == [(0, 896), (512, 1408), (1024, 1920), (1104, 2000)]
    assert max_coverage(2000) == 3 and max_coverage(1408) == 2


def test_window_rows_finish_every_row_once():
    for h, w in [(2000, 1500), (700, 900), (5000, 300)]:
        rows = factseg_window_rows(h, w)
        assert [win for r in rows for win in r.windows] == factseg_windows(h, w)
        finished = [r.done for r in rows]
        assert finished == sorted(finished) and finished[-1] == h
        for i, r in enumerate(rows):  # no later row of windows reaches above ``done``
            assert all(later.y0 >= r.done for later in rows[i + 1:])


@pytest.mark.parametrize("size", [(1000, 1200), (700, 500), (1500, 900)])
def test_streaming_equals_full_canvas_official_config(tiny, size):
    image = (np.random.RandomState(sum(size)).rand(*size, 3) * 255).astype(np.uint8)
    protocol = FactSegSlidingWindow()
    assert np.array_equal(protocol.predict(tiny, image), protocol.full_canvas_predict(tiny, image))


def test_streaming_equals_full_canvas_small_windows_and_ties(tiny):
    protocol = FactSegSlidingWindow(window=96, stride=40)  # up to 3 windows per axis, windows not /32
    for size in [(250, 333), (96, 96), (50, 400)]:
        image = (np.random.RandomState(size[0]).rand(*size, 3) * 255).astype(np.uint8)
        assert np.array_equal(protocol.predict(tiny, image), protocol.full_canvas_predict(tiny, image))

    class Uniform(paddle.nn.Layer):
        def forward(self, x):
            return paddle.full([x.shape[0], 16, x.shape[2], x.shape[3]], 1.0 / 16)

    image = np.zeros((130, 170, 3), np.uint8)
    assert not protocol.predict(Uniform(), image).any()  # exact ties: the first class, as np/torch.argmax


def test_normalised_float_images_give_the_same_labels(tiny):
    """A dataset that already normalised (NormalizePixels, float32 3xHxW) streams the same windows and
    labels as the raw uint8 image normalised per window."""
    from rsrepro.data.isaid import NormalizePixels

    image = (np.random.RandomState(9).rand(150, 210, 3) * 255).astype(np.uint8)
    normalised, _ = NormalizePixels()(image, None)
    protocol = FactSegSlidingWindow(window=96, stride=40)
    assert np.array_equal(protocol.normalized_window(normalised, (10, 106, 5, 101)),
                          protocol.normalized_window(image, (10, 106, 5, 101)))
    labels = protocol.predict(tiny, image)
    assert np.array_equal(protocol.predict(tiny, normalised), labels)
    assert len(np.unique(labels)) > 1  # not a constant map
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        protocol.predict(tiny, normalised.astype(np.float64))


def test_windows_are_zero_padded_after_normalisation():
    seen = []

    class Recorder(paddle.nn.Layer):
        def forward(self, x):
            seen.append(x.numpy())
            return paddle.full([1, 16, x.shape[2], x.shape[3]], 1.0 / 16)

    image = np.full((100, 70, 3), 200, np.uint8)
    FactSegSlidingWindow().predict(Recorder(), image)
    (x,) = seen
    assert x.shape == (1, 3, 128, 96)
    expected = (np.float32(200) - np.float32([123.675, 116.28, 103.53])) / np.float32([58.395, 57.12, 57.375])
    assert np.array_equal(x[0, :, :100, :70], np.broadcast_to(expected[:, None, None], (3, 100, 70)))
    assert not x[0, :, 100:].any() and not x[0, :, :, 70:].any()


def test_evaluate_isaid_with_factseg_model(tmp_path):
    import paddle_models
    from rsrepro.data.isaid import ISAIDDataset
    from rsrepro.data.synthetic import generate_isaid

    root = generate_isaid(tmp_path, num_train=0, num_val=2, sizes=[(96, 160), (64, 64)], num_objects=(4, 6))["root"]
    paddle.seed(1)
    model = paddle_models.build_model("factseg", num_classes=16)
    model.eval()
    protocol = FactSegSlidingWindow(window=64, stride=32)
    dataset = ISAIDDataset(root, "val", raw=True)
    image, _ = dataset[0]
    streamed = protocol.predict(model, image)
    assert np.array_equal(streamed, protocol.full_canvas_predict(model, image))
    predictions = {}
    summary = evaluate_isaid(model, dataset, protocol, on_image=lambda i, p: predictions.__setitem__(i, p))
    assert np.array_equal(predictions[0], streamed) and summary["images"] == 2
    assert summary["pixels"] == 96 * 160 + 64 * 64
    ious = [row["iou"] for row in summary["per_class"]]
    assert summary["fg_miou"] == pytest.approx(float(np.mean(ious[1:])))
    assert summary["per_class"][2]["name"] == "roundabout" and summary["per_class"][12]["name"] == "storage_tank"
    assert "roundabout" in format_iou_table(summary) and "devkit" in summary["naming_note"]


def test_streaming_memory_is_bounded(tiny):
    height, width = 3000, 2400
    image = (np.random.RandomState(5).rand(height, width, 3) * 255).astype(np.uint8)
    protocol = FactSegSlidingWindow()
    peaks = []
    for fn in (protocol.predict, protocol.full_canvas_predict):
        tracemalloc.start()
        fn(tiny, image)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    canvas = 16 * height * width * 4
    carried_rows = max(r.y1 - r.done for r in factseg_window_rows(height, width))
    carry = (16 + 1) * carried_rows * width * 4  # sums + counts carried into the next row of windows
    window = 16 * 896 * 896 * 4
    assert peaks[1] >= canvas  # the official-style merge holds the full (16, H, W) float32 canvas
    # carried rows + the open window block, one window's scores, a column shift and small temporaries
    assert peaks[0] < carry + 3.5 * window + height * width
    assert peaks[0] < 0.5 * peaks[1]


@pytest.mark.full
def test_streaming_memory_on_a_6000_px_image(tiny):
    """6000 x 6000: the full canvas alone would be 2.3 GB; the streaming peak stays near one window row."""
    image = (np.random.RandomState(6).rand(6000, 6000, 3) * 255).astype(np.uint8)
    protocol = FactSegSlidingWindow()
    tracemalloc.start()
    prediction = protocol.predict(tiny, image)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    carried_rows = max(r.y1 - r.done for r in factseg_window_rows(6000, 6000))
    accumulator = (16 + 1) * carried_rows * 6000 * 4
    print(f"6000x6000: traced peak {peak / 2**20:.0f} MiB (carried rows {accumulator / 2**20:.0f} MiB, "
          f"full canvas {16 * 6000 * 6000 * 4 / 2**20:.0f} MiB)")
    assert prediction.shape == (6000, 6000)
    assert peak < accumulator + 3.5 * 16 * 896 * 896 * 4 + prediction.nbytes
