"""FactSeg's sliding-window evaluation on full iSAID images, streamed row band by row band.

Official protocol (``tools/isaid_eval.py::SegmSlidingWinInference`` with ``patch_size=896``,
``stride=512``, ``size_divisor=32``; docs/factseg.md):

1. windows: ``rsrepro.windows.factseg_windows`` (896 / 512, last window shifted inward, a side shorter
   than 896 gives one window of its length), row by row;
2. per window: the uint8 pixels as float32, ``(x - mean) / std`` on the 0-255 scale (or the crop of an
   image the dataset already normalised the same way), zero-padded at the bottom/right to a multiple
   of 32 AFTER normalisation, the model's fused class probabilities (eval mode) cropped back to the
   window;
3. the probabilities are SUMMED into a float32 canvas with a per-pixel window count, in window order;
   ``canvas / count``; argmax over the classes (first maximum on ties). No flip, no scales;
4. one 16 x 16 confusion matrix over all images (background included): IoU per class, mIoU over the 16
   classes and the 15-class foreground mean. Per-class names are the iSAID devkit's
   (``rsrepro.isaid.DEVKIT_CLASS_NAMES``, see ``NAMING_NOTE``).

Streaming: the official code keeps every window's output AND a full-size ``(1, 16, H, W)`` float32 canvas
(10.8 GB each for a 13,000 x 13,000 image). Here only the rows of one window row are open: after a row
of windows is added, the image rows above the next row's start can receive no further window, so they
are divided, arg-maxed and handed out (confusion matrix / label map) and their accumulator rows are
released. Within a row of windows the same holds for columns: once the next window starts to the right
of a column, that column of the row is final. So only one window (classes x 896 x 896) is open, plus
the sums of the rows the row of windows reached below its finished rows, carried at full width into the
next row (16 x 384 x 13,000 x 4 bytes = 0.32 GB at 13,000 px with the official stride; independent of the
image height; an inward-shifted last row can carry up to one window height). Every pixel receives exactly the same
float32 additions in the same order as in the full-canvas computation (``full_canvas_predict``), so
the labels are identical (``tests/test_factseg_eval.py``).

In the engine: a config with ``eval.mode: slide`` and ``eval.window_rule: factseg`` gets a
:class:`FactSegEvaluator` from ``SegmentationTask.build_evaluator`` (periodic evaluation and best-model
selection in the trainer, ``tools/eval.py``); window, stride and divisor come from ``eval.crop_size``,
``eval.stride`` and ``eval.pad_multiple``, the mean / std from the val dataset's normalisation. The
val dataset should return raw uint8 images (``raw: true``): a normalised 13,000 px image is 2 GB.

Use::

    from paddle_models.engine.factseg_eval import FactSegSlidingWindow, evaluate_isaid
    summary = evaluate_isaid(model, ISAIDDataset(root, "val", raw=True))
    print(format_iou_table(summary))
"""

from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Sequence, Tuple

import numpy as np
import paddle

from rsrepro.isaid import DEVKIT_CLASS_NAMES, IGNORE_INDEX, MEAN, NAMING_NOTE, NUM_CLASSES, STD
from rsrepro.metrics import ConfusionMatrix, format_iou_table, segmentation_scalars
from rsrepro.windows import Window, factseg_window_rows, factseg_windows

from .distributed import gather_merge, progress_bar, unwrap_model, world
from .scores import fused_scores

__all__ = [
    "FactSegSlidingWindow",
    "FactSegEvaluator",
    "fused_scores",
    "evaluate_isaid",
    "format_iou_table",
]

Size = int | Tuple[int, int]


@dataclass
class FactSegSlidingWindow:
    """The official sliding-window protocol (module docstring).

    Args:
        window (int | (h, w)): window size. Default 896.
        stride (int | (h, w)): window stride. Default 512.
        size_divisor (int): zero-pad every normalised window to a multiple of this. Default 32.
        mean, std: 0-255 scale normalisation. Default the official ImageNet values.
        num_classes (int): classes of the model output. Default 16.
        score_fn: model outputs -> probabilities (B, K, h, w). Default ``fused_scores``.
        runner: ``runner(model, padded)`` -> numpy probabilities (1, K, ph, pw) of one padded float32
            window (1, 3, ph, pw); replaces the dygraph call and ``score_fn``, so the same streaming runs
            any backend (``tools/infer.py``: a Paddle Inference predictor of an exported probability
            model). Default None: ``score_fn(model(paddle.to_tensor(padded)))``.
    """

    window: Size = 896
    stride: Size = 512
    size_divisor: int = 32
    mean: Tuple[float, float, float] = MEAN
    std: Tuple[float, float, float] = STD
    num_classes: int = NUM_CLASSES
    score_fn: Callable[[Any], paddle.Tensor] = fused_scores
    runner: Callable[[Any, np.ndarray], np.ndarray] | None = None

    def windows(self, height: int, width: int) -> list:
        return factseg_windows(height, width, self.window, self.stride)

    def describe(self) -> Dict[str, Any]:
        return {"window_rule": "factseg", "window": self.window, "stride": self.stride,
                "size_divisor": self.size_divisor, "mean": list(self.mean), "std": list(self.std),
                "padding": "zeros after normalisation", "merge": "sum of probabilities / count, argmax",
                "flip": False, "scales": [1.0]}

    def normalized_window(self, image: np.ndarray, win: Window) -> np.ndarray:
        """(3, h, w) float32 normalised pixels of one window (uint8 HxWx3 image, or float32 3xHxW already
        normalised by the dataset, e.g. ``NormalizePixels``: the same float32 arithmetic)."""
        y0, y1, x0, x1 = win
        if image.dtype == np.float32:
            return image[:, y0:y1, x0:x1]
        x = (image[y0:y1, x0:x1].astype(np.float32) - np.asarray(self.mean, np.float32)) \
            / np.asarray(self.std, np.float32)  # h, w, 3
        return x.transpose(2, 0, 1)

    @paddle.no_grad()
    def window_probabilities(self, model: paddle.nn.Layer, image: np.ndarray, win: Window) -> np.ndarray:
        """(K, h, w) float32 probabilities of one window of a uint8 HxWx3 (or normalised 3xHxW) image."""
        y0, y1, x0, x1 = win
        h, w = y1 - y0, x1 - x0
        ph = int(math.ceil(h / self.size_divisor)) * self.size_divisor
        pw = int(math.ceil(w / self.size_divisor)) * self.size_divisor
        padded = np.zeros((1, 3, ph, pw), np.float32)  # zeros AFTER normalisation, as th_divisible_pad
        padded[0, :, :h, :w] = self.normalized_window(image, win)
        if self.runner is not None:
            probs = np.asarray(self.runner(model, padded))
            if probs.ndim != 4 or probs.shape[2:] != padded.shape[2:]:
                raise ValueError(f"runner gave shape {probs.shape} for a window input {padded.shape}; expected "
                                 f"(1, {self.num_classes}, {ph}, {pw}) class probabilities")
        else:
            probs = self.score_fn(model(paddle.to_tensor(padded)))
        if probs.shape[1] != self.num_classes:
            raise ValueError(f"model gave {probs.shape[1]} classes, expected {self.num_classes}")
        probs = probs[0, :, :h, :w]
        return (probs if isinstance(probs, np.ndarray) else probs.numpy()).astype(np.float32, copy=False)

    def stream(self, model: paddle.nn.Layer, image: np.ndarray) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield ``(first_row, labels)`` bands (uint8 (rows, W)) top to bottom; see the module docstring."""
        image = _check_image(image)
        height, width = _image_size(image)
        k = self.num_classes
        bands = factseg_window_rows(height, width, self.window, self.stride)
        carry_rows = max(b.y1 - b.done for b in bands)
        # Sums of the rows the previous window row reached below its finished rows, full width.
        carry = np.zeros((k, carry_rows, width), np.float32)
        carry_count = np.zeros((carry_rows, width), np.float32)
        held = 0  # rows of ``carry`` in use; they start at the current window row's y0
        for band in bands:
            n = band.done - band.y0  # rows this window row finishes
            labels = np.zeros((n, width), np.uint8)
            for acc, count, c0, c1 in self._band_columns(model, image, band, carry, carry_count, held):
                if float(count[:n].min()) == 0:
                    raise RuntimeError(f"rows {band.y0}..{band.done}, columns {c0}..{c1} of a {height}x{width} "
                                       "image were not covered")
                labels[:, c0:c1] = _argmax_of_average(acc[:, :n], count[:n])
                kept = acc.shape[1] - n  # rows the next window row adds to: carried
                carry[:, :kept, c0:c1] = acc[:, n:]
                carry_count[:kept, c0:c1] = count[n:]
            held = band.y1 - band.done
            yield band.y0, labels

    def _band_columns(self, model: paddle.nn.Layer, image: np.ndarray, band: Any, carry: np.ndarray,
                      carry_count: np.ndarray, held: int) -> Iterator[Tuple[np.ndarray, np.ndarray, int, int]]:
        """One window row, left to right: yield ``(sums, counts, c0, c1)`` for each block of columns that
        no later window of the row reaches. Only one window's width of columns is open at a time. Each
        column enters the open block starting from the carried sums, so every pixel gets the same float32
        additions in the same order as on a full canvas."""
        k, rows = self.num_classes, band.y1 - band.y0
        span = max(x1 - x0 for _, _, x0, x1 in band.windows)
        acc = np.zeros((k, rows, span), np.float32)
        count = np.zeros((rows, span), np.float32)
        left = loaded = band.windows[0][2]  # open block = image columns [left, loaded)
        for index, win in enumerate(band.windows):
            _, _, x0, x1 = win
            if x1 > loaded:  # new columns enter from the carry
                a, b = loaded - left, x1 - left
                acc[:, :, a:b] = 0
                count[:, a:b] = 0
                acc[:, :held, a:b] = carry[:, :held, loaded:x1]
                count[:held, a:b] = carry_count[:held, loaded:x1]
                loaded = x1
            acc[:, :, x0 - left:x1 - left] += self.window_probabilities(model, image, win)
            count[:, x0 - left:x1 - left] += 1
            finished = band.windows[index + 1][2] if index + 1 < len(band.windows) else loaded
            if finished > left:
                yield acc[:, :, :finished - left], count[:, :finished - left], left, finished
                shift = finished - left
                acc[:, :, :loaded - finished] = acc[:, :, shift:loaded - left].copy()
                count[:, :loaded - finished] = count[:, shift:loaded - left].copy()
                left = finished

    def predict(self, model: paddle.nn.Layer, image: np.ndarray) -> np.ndarray:
        """Label map (uint8 HxW) of a whole image, streamed."""
        image = _check_image(image)
        out = np.empty(_image_size(image), np.uint8)
        for row, labels in self.stream(model, image):
            out[row:row + labels.shape[0]] = labels
        return out

    def full_canvas_predict(self, model: paddle.nn.Layer, image: np.ndarray) -> np.ndarray:
        """The official merge, literally: full-size sum canvas and count, divide, argmax (reference)."""
        image = _check_image(image)
        height, width = _image_size(image)
        canvas = np.zeros((self.num_classes, height, width), np.float32)
        count = np.zeros((height, width), np.float32)
        for win in self.windows(height, width):
            y0, y1, x0, x1 = win
            canvas[:, y0:y1, x0:x1] += self.window_probabilities(model, image, win)
            count[y0:y1, x0:x1] += 1
        return np.argmax(canvas / count, axis=0).astype(np.uint8)

    def update(self, matrix: ConfusionMatrix, model: paddle.nn.Layer, image: np.ndarray,
               label: np.ndarray | None, keep_prediction: bool = False) -> np.ndarray | None:
        """Stream one image into ``matrix`` (band by band); optionally return the full label map."""
        image = _check_image(image)
        size = _image_size(image)
        if label is not None:
            label = np.asarray(label)
            if tuple(label.shape) != size:
                raise ValueError(f"label shape {tuple(label.shape)} differs from the image size {size}")
        out = np.empty(size, np.uint8) if keep_prediction else None
        for row, labels in self.stream(model, image):
            if label is not None:
                matrix.update(labels, label[row:row + labels.shape[0]])
            if out is not None:
                out[row:row + labels.shape[0]] = labels
        return out


def _argmax_of_average(acc: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``np.argmax(acc / count, axis=0)`` one class at a time (2 band-sized temporaries, not K).

    A strict ``>`` keeps the first maximum on ties, as ``np.argmax`` (and ``torch.argmax``) do.
    """
    best = acc[0] / count
    labels = np.zeros(best.shape, np.uint8)
    for c in range(1, acc.shape[0]):
        value = acc[c] / count
        better = value > best
        labels[better] = c
        np.maximum(best, value, out=best)
    return labels


def _check_image(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and ((image.dtype == np.uint8 and image.shape[2] == 3)
                            or (image.dtype == np.float32 and image.shape[0] == 3)):
        return image
    raise ValueError(f"FactSeg evaluation takes uint8 H x W x 3 images (ISAIDDataset(..., raw=True)) or float32 "
                     f"3 x H x W images normalised on the 0-255 scale (NormalizePixels); got shape {image.shape} "
                     f"dtype {image.dtype}")


def _image_size(image: np.ndarray) -> Tuple[int, int]:
    return tuple(image.shape[:2]) if image.dtype == np.uint8 else tuple(image.shape[1:])  # type: ignore[return-value]


def _summary(matrix: ConfusionMatrix, protocol: FactSegSlidingWindow, class_names: Sequence[str] | None,
             fg_start: int | None) -> Dict[str, Any]:
    summary = matrix.summary(list(class_names) if class_names is not None else None, fg_start)
    summary["protocol"] = protocol.describe()
    if class_names is not None and tuple(class_names) == DEVKIT_CLASS_NAMES:
        summary["naming_note"] = NAMING_NOTE
    summary["confusion_matrix"] = matrix.matrix
    return summary


class FactSegEvaluator:
    """Dataset-level FactSeg evaluation with the streamed official protocol (module docstring); the
    engine's evaluator for ``eval.window_rule: factseg`` (same interface as ``SegmentationEvaluator``).

    Args:
        protocol: the sliding-window protocol.
        ignore_index: label value skipped. Default 255.
        class_names: names for the IoU table / JSON. Default the iSAID devkit names.
        fg_start: also report the mean IoU of classes ``fg_start..`` (FactSeg: 1, the 15 foreground
            classes); None: not reported.

    Every evaluation logs the per-class table (``table_every_eval``). Images are read one at a time
    from the dataset (``dataset[i]``, sample ``i`` on rank ``i % world``); ``batch_size`` and
    ``num_workers`` of the generic evaluator do not apply (windows run one by one, as officially).
    """

    table_every_eval = True

    def __init__(self, protocol: FactSegSlidingWindow, ignore_index: int | None = IGNORE_INDEX,
                 class_names: Sequence[str] | None = DEVKIT_CLASS_NAMES, fg_start: int | None = 1) -> None:
        if class_names is not None and len(class_names) != protocol.num_classes:
            raise ValueError(f"{len(class_names)} class names for {protocol.num_classes} classes")
        self.protocol = protocol
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.fg_start = fg_start

    def evaluate(self, model: paddle.nn.Layer, dataset: Any, batch_size: int = 1, num_workers: int = 0,
                 max_samples: int | None = None, progress: bool = True) -> Dict[str, Any]:
        """``ConfusionMatrix.summary`` (``miou`` over all classes, ``fg_miou``, per-class table) plus
        ``protocol``, ``samples``, ``seconds``, ``naming_note`` and ``confusion_matrix``."""
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        matrix = ConfusionMatrix(self.protocol.num_classes, self.ignore_index)
        start = time.perf_counter()
        total = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
        rank, size = world()
        indices = range(rank, total, size)
        try:
            for index in progress_bar(indices, len(indices), "eval", progress):
                image, label = dataset[index]
                self.protocol.update(matrix, net, image, label)
        finally:
            if was_training:
                net.train()
        matrix = gather_merge(matrix)
        summary = _summary(matrix, self.protocol, self.class_names, self.fg_start)
        summary.update(samples=total, seconds=time.perf_counter() - start)
        return summary

    scalars = staticmethod(segmentation_scalars)

    @staticmethod
    def format(summary: Mapping[str, Any]) -> str:
        text = format_iou_table(dict(summary))
        return text + (f"\nnote: {summary['naming_note']}" if summary.get("naming_note") else "")


def evaluate_isaid(model: paddle.nn.Layer, samples: Iterable[Tuple[np.ndarray, np.ndarray]],
                   protocol: FactSegSlidingWindow | None = None, class_names: Sequence[str] = DEVKIT_CLASS_NAMES,
                   max_samples: int | None = None, measure_memory: bool = False,
                   on_image: Callable[[int, np.ndarray], None] | None = None) -> Dict[str, Any]:
    """Confusion-matrix metrics of ``model`` over ``(uint8 image, uint8 label)`` samples.

    Returns ``ConfusionMatrix.summary(class_names, fg_start=1)`` (``miou`` over 16 classes, ``fg_miou``
    over the 15 foreground classes, per-class table with devkit names) plus ``protocol``, ``images``,
    ``seconds``, ``naming_note`` and, with ``measure_memory``, ``peak_traced_bytes`` (tracemalloc peak of
    numpy / Python allocations during the run). ``on_image(index, prediction)`` receives every label map.
    """
    protocol = protocol or FactSegSlidingWindow()
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(protocol.num_classes, IGNORE_INDEX)
    start = time.perf_counter()
    if measure_memory:
        tracemalloc.start()
    images = 0
    try:
        for index, (image, label) in enumerate(samples):
            if max_samples is not None and index >= max_samples:
                break
            prediction = protocol.update(matrix, model, image, label, keep_prediction=on_image is not None)
            if on_image is not None:
                on_image(index, prediction)
            images += 1
        peak = tracemalloc.get_traced_memory()[1] if measure_memory else None
    finally:
        if measure_memory:
            tracemalloc.stop()
        if was_training:
            model.train()
    summary = _summary(matrix, protocol, class_names, fg_start=1)
    summary.update(images=images, seconds=time.perf_counter() - start)
    if peak is not None:
        summary["peak_traced_bytes"] = int(peak)
    return summary
