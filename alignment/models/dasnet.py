"""Alignment cases of DASNet (ResNet-50) and DASNet-V2 (decoder; and its no-PAM/no-CAM ablation).

Inputs model the official preprocessing, BGR minus a per-time mean without std division: N(0, 1) x 50.
Labels are 0/1 blocks of 6x6 pixels: DASNet resizes the label to its 1/8 embeddings by bilinear
align_corners interpolation and keeps it soft, as 256 -> 32 does on CDD's free-form masks. An
align_corners resize by 8 (source position 8i + 7i/(h-1)) never straddles the edge of an 8-aligned
block, so the 8x8 blocks of ``cases.binary_labels`` would leave the soft path untested; 6x6 blocks on
the 72x72 inputs give soft values at block edges (checked by tests/test_dasnet_loss.py).
Outputs are L2-normalised, so no classifier rescaling (``logit_layers`` empty).
"""

from typing import Callable

import numpy as np

from ..cases import AlignCase, ConvergenceSize, ConvergenceSpec, register_case


def block_labels(change_fraction: float = 0.2, block: int = 6) -> Callable:
    """0/1 change labels (B, H, W) made of ``block`` x ``block`` squares."""

    def make(rng: np.random.RandomState, shape) -> np.ndarray:
        b, _, h, w = shape
        cells = (rng.rand(b, -(-h // block), -(-w // block)) < change_fraction).astype("int64")
        return np.kron(cells, np.ones((1, block, block), dtype="int64"))[:, :h, :w]

    return make

DASNET_OPTIMIZER = {"type": "adam", "weight_decay": 5e-5, "betas": [0.9, 0.999], "eps": 1e-8}
# Official DASNet: lr x0.1 every 20,000 iterations (utils.adjust_learning_rate).
DASNET_SCHEDULE = {"type": "step", "base_lr": 1e-4, "step_size": 20000, "gamma": 0.1, "by": "iter"}
# DASNet-V2 README: 1e-4 (epochs 1-20), 5e-5 (21-40), 1e-5 (41-60), 5e-6 (61-70), 1e-6 (71-80).
DASNET_V2_SCHEDULE = {"type": "piecewise", "base_lr": 1e-4, "boundaries": [20, 40, 60, 70],
                      "values": [1e-4, 5e-5, 1e-5, 5e-6, 1e-6], "by": "epoch"}

HEAD_HOOKS = ["CNN.pretrained.layer1", "CNN.pretrained.layer2", "CNN.pretrained.layer3",
              "CNN.pretrained.layer4", "CNN.head.conv5a", "CNN.head.conv51", "CNN.head.conv5c",
              "CNN.head.conv52", "CNN.head"]
ATTENTION_HOOKS = ["CNN.head.sa", "CNN.head.sc"]
DECODER_HOOKS = ["decoder.UpBlock1", "decoder.UpBlock2", "decoder.UpBlock3", "decoder"]
ZERO_GRADS = {
    "CNN.head.sa.key_conv.bias": "adds q_i . b to every energy of row i; softmax is shift-invariant per row",
}

# Every variant and option of the loss (rsrepro/dasnet.py); "default" is the case's own loss_kwargs.
LOSS_VARIANTS = {
    "official": {"variant": "official"},
    "weighted": {"variant": "weighted"},
    "cosine": {"variant": "cosine"},
    "batch_weights": {"variant": "official", "class_weights": "batch"},
    "fixed_weights": {"variant": "official", "class_weights": (0.6, 2.5)},
    "cosine_batch_weights": {"variant": "cosine", "class_weights": "batch"},
    "margins": {"variant": "weighted", "margins": (0.1, 1.4)},
    "lambdas": {"variant": "weighted", "lambdas": (0.5, 0.25, 1.0)},
    "saca_only": {"variant": "weighted", "lambdas": (0.0, 0.0, 1.0)},
    "stanet_balanced": {"variant": "official", "margins": (0.0, 2.0), "balanced": True},
    "cosine_balanced": {"variant": "cosine", "balanced": True},
    "eps": {"variant": "official", "eps": 1e-4},
}


def _variants_except(default: str):
    return {k: v for k, v in LOSS_VARIANTS.items() if k != default}


# check_backward's constant lr (eval mode). The N(0, 1) x 50 inputs meet BN running statistics of
# variance ~1 (harness.randomize_reference), so in eval mode every activation is ~50x what trained
# statistics would give and the PAM / CAM energies ~2500x: a stiff regime in which Adam, which moves EVERY
# weight by about lr per step whatever its gradient, makes the 5-step trajectory strongly expanding. At
# the recipe lr 1e-4, float64 rounding of 5e-14 at step 0 grows x20-50 per step on dasnet_v2 (2.9e-9 at
# step 3, 2.1e-8 at step 4; dasnet_v2_nopam_nocam 4.8e-10, dasnet_r50 2.2e-11 at step 4), so the float64
# evidence itself leaves 1e-9. At 1e-5 it stays below 1.5e-10. Train mode (batch statistics) is well
# conditioned: check_train runs the recipe lr 1e-4 and its float64 losses agree to 5e-15 over 20 iterations.
# Training to the end (check_convergence): the official Adam recipe on a generated CDD (list layout, BGR minus
# the CDD means, no augmentation, as the official code), in epochs over the generated training set;
# evaluation: the saca-distance sweep over linspace(0, 2.2, 96), max-F.
# Size full: 32 pairs of 48 px, 20 epochs (160 iterations; for DASNet-V2 the first phase of its piecewise
# schedule, epochs 1-20 at 1e-4; DASNet's step at 20,000 iterations is never reached). Its data: one season
# per pair and 3-6 buildings of 1/6-1/3 of the side (13 % changed pixels, a change covers whole cells of the
# 1/8 embedding). Torch-side probes (alignment.probe_recipe, seed 0, DASNet-V2, 160 iterations at 48 px):
# the default pairs (seasonal shift, small buildings, 5 % changed) stay within 0.03 of chance even at 10x
# the lr; 8 pairs over the whole 80-epoch schedule stay within 0.09 (they overfit: flat from iteration 40);
# 16 pairs x 40 epochs +0.099; 32 pairs x 20 epochs +0.24 (DASNet-R50 +0.22) over chance 0.233.
DASNET_FULL_DATA = {"num_train": 32, "num_val": 8, "size": 48, "buildings": (3, 7), "building_size": (1 / 6, 1 / 3),
                    "season_shift": False}


def dasnet_convergence(config: str, recipe: str) -> ConvergenceSpec:
    return ConvergenceSpec(config=config, recipe=recipe, family="cdd_dasnet", metric="max_f", sizes={
        "small": ConvergenceSize(data={"num_train": 4, "num_val": 2, "size": 32}, batch_size=2,
                                 length=("iters", 8), float64_iters=4, evals=1),
        "full": ConvergenceSize(data=DASNET_FULL_DATA, batch_size=4, length=("epochs", 20), float64_iters=200,
                                evals=4, float64_batch=2),
    })


# float64 evidence of the full-size train check (batch 4 pairs of 256 px in float32): one pair at the paper's
# 256 px, the backward check's shape. The float32 check at 4 pairs peaked at 7.1 GB RSS (DASNet-R50, measured
# with /usr/bin/time); float64 doubles the activations, too much beside a second check on a 24 GB machine.
FULL_EVIDENCE = {"full": (1, 3, 256, 256)}

COMMON = dict(
    loss="dasnet_contrastive", num_inputs=2, task="change_detection", dataset="cdd_dasnet", num_classes=2,
    input_scale=50.0, make_labels=block_labels(), optimizer=DASNET_OPTIMIZER, backward_lr=1e-5,
)

register_case(AlignCase(
    name="dasnet_r50", model="dasnet", model_kwargs={"backbone": "resnet50"},
    loss_kwargs={"variant": "official"}, extra_loss_variants=_variants_except("official"),
    input_shapes={"small": (2, 3, 72, 72), "full": (1, 3, 256, 256)},
    hook_modules=HEAD_HOOKS + ATTENTION_HOOKS, zero_grad_params=ZERO_GRADS,
    lr_scheduler=DASNET_SCHEDULE, train_shapes={"small": (2, 3, 72, 72), "full": (4, 3, 256, 256)},
    evidence_shapes=FULL_EVIDENCE,
    convergence=dasnet_convergence("configs/dasnet/dasnet_r50_cdd_256_60e.yml", "dasnet"),
    **COMMON,
))
register_case(AlignCase(
    name="dasnet_v2", model="dasnet_v2", model_kwargs={"decoder_channels": 32},
    loss_kwargs={"variant": "weighted"}, extra_loss_variants=_variants_except("weighted"),
    input_shapes={"small": (2, 3, 72, 72), "full": (1, 3, 256, 256)},
    hook_modules=HEAD_HOOKS + ATTENTION_HOOKS + DECODER_HOOKS, zero_grad_params=ZERO_GRADS,
    lr_scheduler=DASNET_V2_SCHEDULE, train_shapes={"small": (2, 3, 72, 72), "full": (4, 3, 256, 256)},
    evidence_shapes=FULL_EVIDENCE,
    convergence=dasnet_convergence("configs/dasnet_v2/dasnet_v2_r50_cdd_256_80e.yml", "dasnet_v2"),
    **COMMON,
))
register_case(AlignCase(
    name="dasnet_v2_nopam_nocam", model="dasnet_v2",
    model_kwargs={"decoder_channels": 32, "use_pam": False, "use_cam": False},
    loss_kwargs={"variant": "weighted"},
    input_shapes={"small": (2, 3, 72, 72), "full": (1, 3, 256, 256)},
    hook_modules=HEAD_HOOKS + DECODER_HOOKS,
    lr_scheduler=DASNET_V2_SCHEDULE, train_shapes={"small": (2, 3, 72, 72), "full": (4, 3, 256, 256)},
    evidence_shapes=FULL_EVIDENCE,
    convergence=dasnet_convergence("configs/dasnet_v2/dasnet_v2_r50_nopam_nocam_cdd_256_80e.yml", "dasnet_v2"),
    **COMMON,
))
