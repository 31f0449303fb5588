"""Alignment cases of FactSeg (ResNet-50, iSAID, 16 classes) with its joint loss in every mode.

The model is built with ``output="all"`` so that one eval-mode pass gives what each check needs: the
forward check compares both logits AND the fused probabilities, and the loss / backward / train checks
feed ``(fg_logits, bi_logits, probability)`` to ``factseg_joint`` (which uses the first two; the
probability gets no gradient on either side). The loss check covers every mode at ratios 0.1 and 0.2,
the inverse-weight option and the plain mean; ``alignment/check_factseg_modes.py`` additionally proves
the three modes equal to each other and to a transcription of the official loss.
"""

from __future__ import annotations

import numpy as np

from ..cases import AlignCase, ConvergenceSize, ConvergenceSpec, register_case

FACTSEG_HOOKS = [
    "resencoder.resnet.layer1", "resencoder.resnet.layer2", "resencoder.resnet.layer3", "resencoder.resnet.layer4",
    "fgfpn", "bifpn", "fg_decoder", "bi_decoder", "fg_cls", "bi_cls",
]
# Official recipe (configs/isaid/factseg.py): SGD momentum 0.9, wd 1e-4 on everything, lr 0.007,
# poly 0.9, global gradient-norm clipping at 35.
FACTSEG_OPTIMIZER = {"type": "momentum", "momentum": 0.9, "weight_decay": 1e-4, "grad_clip_norm": 35.0}
FACTSEG_SCHEDULE = {"type": "poly", "base_lr": 0.007, "power": 0.9, "end_lr": 0.0}

LOSS_DEFAULT = {"ratio": 0.1, "ignore_index": 255, "mode": "pylayer"}
LOSS_VARIANTS = {
    f"{mode}_r{ratio}": {**LOSS_DEFAULT, "mode": mode, "ratio": ratio}
    for ratio in (0.1, 0.2) for mode in ("pylayer", "inplace", "concat")
    if not (mode == "pylayer" and ratio == 0.1)  # that one is the default
}
LOSS_VARIANTS.update({
    "inverse_weight": {**LOSS_DEFAULT, "inverse_weight": True},
    "inverse_weight_concat_r0.2": {**LOSS_DEFAULT, "inverse_weight": True, "mode": "concat", "ratio": 0.2},
    "no_som": {**LOSS_DEFAULT, "som": False},
    "no_som_inverse_weight": {**LOSS_DEFAULT, "som": False, "inverse_weight": True},
})


def isaid_like_labels(num_classes: int = 16, object_fraction: float = 0.15, pad_fraction: float = 0.2):
    """Mostly background with small blocks of foreground classes; ignore (255) only in a bottom/right
    band, where iSAID labels get it (padding of windows smaller than the crop)."""

    def make(rng: np.random.RandomState, shape) -> np.ndarray:
        b, _, h, w = shape
        cells = rng.randint(1, num_classes, size=(b, max(1, h // 4), max(1, w // 4)))
        cells[rng.rand(*cells.shape) > object_fraction] = 0
        labels = np.kron(cells, np.ones((1, 4, 4), dtype=np.int64))[:, :h, :w].astype(np.int64)
        band_h, band_w = int(h * pad_fraction), int(w * pad_fraction)
        for i in range(b):
            if rng.rand() < 0.5:
                labels[i, h - band_h:, :] = 255
            else:
                labels[i, :, w - band_w:] = 255
        return labels

    return make


# Training to the end (check_convergence): the official iSAID recipe (SGD 0.9, wd 1e-4, lr 0.007, poly 0.9,
# clip 35, CP loss + SOM 0.1, flips + rot90 windows) shortened, on a generated iSAID in the real layout;
# windows and stride in the official 896 : 512 proportion; evaluation the streamed sliding-window protocol.
FACTSEG_CONVERGENCE = ConvergenceSpec(
    config="configs/factseg/factseg_r50_isaid_60k.yml", recipe="factseg", family="isaid", metric="miou", sizes={
        "small": ConvergenceSize(data={"num_train": 1, "num_val": 1, "sizes": [(128, 128), (96, 128)],
                                       "num_objects": (6, 10)}, batch_size=2, length=("iters", 8),
                                 float64_iters=4, crop=64, evals=1),
        # float64 at 128 windows: with 64 windows c5 is 2 x 2 and batch-2 BatchNorm statistics of 8 values
        # carry a 1e-15 nudge to 6e-13 in 6 iterations (1.6e-14 at 128)
        "full": ConvergenceSize(data={"num_train": 3, "num_val": 2, "sizes": [(192, 256), (256, 192), (256, 256),
                                                                              (192, 192), (192, 256)],
                                      "num_objects": (16, 28)}, batch_size=4, length=("iters", 160),
                                float64_iters=200, crop=64, evals=4, float64_batch=2, float64_crop=128),
    },
    float64_loss={"som": False},
    float64_loss_reason="SOM keeps the top 10 % per-pixel losses; a rounding-sized difference moves pixels across "
                        "that boundary (a torch run nudged by 1e-15 differs by 2e-2 in loss after 4 iterations "
                        "with SOM), so the float64 identity runs the mean over valid pixels; the float32 runs keep SOM")

register_case(AlignCase(
    extra_checks=["factseg_modes"],
    name="factseg_r50", model="factseg", model_kwargs={"num_classes": 16, "output": "all"},
    loss="factseg_joint", loss_kwargs=dict(LOSS_DEFAULT), extra_loss_variants=LOSS_VARIANTS,
    input_shapes={"small": (2, 3, 64, 64), "full": (1, 3, 896, 896)},
    make_labels=isaid_like_labels(), task="segmentation", dataset="isaid", num_classes=16,
    hook_modules=FACTSEG_HOOKS, logit_layers=["fg_cls", "bi_cls"], logit_scale=100.0,
    optimizer=FACTSEG_OPTIMIZER, lr_scheduler=FACTSEG_SCHEDULE,
    train_shapes={"small": (2, 3, 64, 64), "full": (2, 3, 896, 896)},
    # float64 evidence of the full-size train check: one 896 window, the backward check's shape (its float32 +
    # float64 run peaked at 13.8 GB RSS). The float32 train check at 2 windows peaked at 9.7 GB; float64
    # doubles the activations, too much beside a second check on a 24 GB machine.
    evidence_shapes={"full": (1, 3, 896, 896)},
    convergence=FACTSEG_CONVERGENCE,
))
