"""Alignment cases of DANet: ResNet-50 and the released ResNet-101 multi-grid configuration."""

from ..cases import AlignCase, ConvergenceSize, ConvergenceSpec, register_case, segmentation_labels

DANET_HOOKS = [
    "pretrained.layer1", "pretrained.layer2", "pretrained.layer3", "pretrained.layer4",
    "head.conv5a", "head.sa", "head.conv51", "head.conv5c", "head.sc", "head.conv52", "head",
]
DANET_OPTIMIZER = {"type": "momentum", "momentum": 0.9, "weight_decay": 1e-4, "lr_mult": {"head.": 10.0}}
DANET_SCHEDULE = {"type": "poly", "base_lr": 0.003, "power": 0.9, "end_lr": 0.0}

DANET_ZERO_GRADS = {
    "head.sa.key_conv.bias": "adds q_i . b to every energy of row i; softmax is shift-invariant per row",
}
DANET_LOGITS = {"logit_layers": ["head.conv6.1", "head.conv7.1", "head.conv8.1"], "logit_scale": 40.0}

# Training to the end (check_convergence): the paper recipe (SGD 0.9, wd 1e-4, lr 0.003, head x10, poly 0.9
# per iteration, DANet augmentation with scales 0.75-2.0) shortened in iterations and size, on a generated
# Cityscapes; evaluation single-scale whole image, mIoU over the 19 classes (official definition).
def danet_convergence(config: str) -> ConvergenceSpec:
    return ConvergenceSpec(config=config, recipe="danet", family="cityscapes", metric="miou", sizes={
        "small": ConvergenceSize(data={"num_train": 4, "num_val": 2, "size": (32, 64)}, batch_size=2,
                                 length=("iters", 12), float64_iters=4, crop=32, evals=1),
        "full": ConvergenceSize(data={"num_train": 24, "num_val": 6, "size": (64, 128)}, batch_size=4,
                                length=("iters", 160), float64_iters=200, crop=48, evals=4,
                                float64_batch=2, float64_crop=32),
    })


register_case(AlignCase(
    name="danet_r50", model="danet", model_kwargs={"backbone": "resnet50", "num_classes": 19},
    loss="danet_ce", loss_kwargs={}, input_shapes={"small": (2, 3, 64, 64), "full": (1, 3, 512, 512)},
    extra_loss_variants={"weighted": {"weights": (1.0, 0.4, 0.4)}, "ignore_neg1": {"ignore_index": -1}},
    make_labels=segmentation_labels(19), hook_modules=DANET_HOOKS, **DANET_LOGITS,
    zero_grad_params=DANET_ZERO_GRADS,
    optimizer=DANET_OPTIMIZER, lr_scheduler=DANET_SCHEDULE,
    train_shapes={"small": (2, 3, 48, 48), "full": (1, 3, 512, 512)},
    convergence=danet_convergence("configs/danet/danet_r50_cityscapes_768_240e.yml"),
))
register_case(AlignCase(
    name="danet_r101_mg", model="danet",
    model_kwargs={"backbone": "resnet101", "num_classes": 19, "multi_grid": True,
                  "multi_dilation": (4, 8, 16)},
    loss="danet_ce", loss_kwargs={}, input_shapes={"small": (1, 3, 64, 64), "full": (1, 3, 512, 512)},
    make_labels=segmentation_labels(19), hook_modules=DANET_HOOKS, **DANET_LOGITS,
    zero_grad_params=DANET_ZERO_GRADS,
    optimizer=DANET_OPTIMIZER, lr_scheduler=DANET_SCHEDULE,
    train_shapes={"small": (2, 3, 48, 48), "full": (1, 3, 512, 512)},
    convergence=danet_convergence("configs/danet/danet_r101_mg_cityscapes_768_240e.yml"),
))
