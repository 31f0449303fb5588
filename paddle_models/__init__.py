"""PaddlePaddle implementations. ``build_model`` / ``build_loss`` mirror ``torch_ref``'s.

Every top-level module of this package (one model per file) and of ``losses/`` registers itself on
import, so a new model is a new file: nothing here needs to change.
"""

from typing import Any

from rsrepro.discovery import import_submodules

from . import losses  # noqa: F401  (registers the losses)
from .registry import LOSSES, MODELS

import_submodules(__name__, __path__, skip=("registry",))


def build_model(name: str, **kwargs: Any):
    """Build a registered model, e.g. ``build_model("danet", backbone="resnet50")``."""
    return MODELS.build(name, **kwargs)


def build_loss(name: str, **kwargs: Any):
    """Build a registered loss; call it as ``loss(outputs, labels)``."""
    return LOSSES.build(name, **kwargs)


__all__ = ["MODELS", "LOSSES", "build_model", "build_loss"]
