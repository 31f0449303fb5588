"""Framework-free datasets, image reading, transforms and synthetic data (numpy / Pillow only).

Both trees (``paddle_models`` training code and ``torch_ref``) import from here; nothing in this
package imports paddle or torch.
"""

from .cityscapes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE, CityscapesDataset
from .errors import DatasetError, TransformConfigError
from .io import read_image, read_label
from .transforms import build_transforms, danet_train_transforms, val_transforms

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "PALETTE",
    "CityscapesDataset",
    "DatasetError",
    "TransformConfigError",
    "read_image",
    "read_label",
    "build_transforms",
    "danet_train_transforms",
    "val_transforms",
]
