"""``DATASETS``: dataset name (``dataset.<split>.type`` in a run config) -> dataset class.

Each dataset module registers its own classes with ``@DATASETS.register(name)``; importing
``rsrepro.data`` imports them all. A dataset class takes its keyword arguments from the config
section (``transforms`` is passed as ``transform``), returns numpy arrays from ``__getitem__``
(segmentation: image, label; change detection: t0, t1, label), and may offer ``set_epoch`` / a
``seed`` argument (exactly reproducible augmentation), ``NUM_CLASSES``, ``CLASS_NAMES``, ``PALETTE``,
``IGNORE_INDEX`` and ``default_val_transforms`` (the validation pipeline used when none is configured,
e.g. by tools/export.py writing deploy.yml without reading any data).
"""

from rsrepro.registry import Registry

__all__ = ["DATASETS"]

DATASETS = Registry("dataset")
