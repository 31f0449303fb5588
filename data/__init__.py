"""Framework-free datasets, image reading, transforms and synthetic data (numpy / Pillow only).

Installed as ``rsrepro.data`` (the folder keeps the card's name ``data/``; the import name is unique so
that it cannot collide with another installed ``data`` package). Both trees (``paddle_models`` training
code and ``torch_ref``) import from here; nothing in this package imports paddle or torch.

Registries live with what they register: ``registry.DATASETS`` (every dataset module registers its
classes), ``transforms.TRANSFORMS`` (image / label transforms), ``cd_transforms.CD_TRANSFORMS``
(change-detection pair transforms).
"""

from . import cdd, isaid  # noqa: F401  (register their datasets)
from .cityscapes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE, CityscapesDataset
from .errors import DatasetError, TransformConfigError
from .io import read_image, read_label
from .normalization import normalization_of, normalization_spec
from .registry import DATASETS
from .transforms import build_transforms, danet_train_transforms, val_transforms

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "PALETTE",
    "CityscapesDataset",
    "DatasetError",
    "TransformConfigError",
    "normalization_of",
    "normalization_spec",
    "read_image",
    "read_label",
    "build_transforms",
    "danet_train_transforms",
    "val_transforms",
]
