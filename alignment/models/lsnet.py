"""Alignment cases of LSNet: the three FPN variants, on raw 0-255 image pairs."""

from ..cases import AlignCase, binary_labels, register_case

LSNET_OPTIMIZER = {"type": "adamw", "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}
# StepLR(8 epochs, 0.5); check_train steps it every iteration, which runs through two decays.
LSNET_SCHEDULE = {"type": "step", "base_lr": 1e-3, "step_size": 8, "gamma": 0.5, "by": "epoch"}
LSNET_HOOKS = ["backbone", "FPN", "head.ca", "head"]

for variant in ("diffFPN", "thin_diffFPN", "denseFPN"):
    register_case(AlignCase(
        name=f"lsnet_{variant}", model="lsnet", model_kwargs={"variant": variant},
        loss="lsnet_hybrid", loss_kwargs={"dice": "official"},
        extra_loss_variants={"standard_dice": {"dice": "standard"}},
        input_shapes={"small": (2, 3, 64, 64), "full": (4, 3, 256, 256)}, num_inputs=2,
        input_range=(0.0, 255.0), make_labels=binary_labels(), task="change_detection", num_classes=2,
        dataset="cdd_lsnet", hook_modules=LSNET_HOOKS, optimizer=LSNET_OPTIMIZER,
        lr_scheduler=LSNET_SCHEDULE, train_shapes={"small": (2, 3, 64, 64), "full": (12, 3, 256, 256)},
    ))
