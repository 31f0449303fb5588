"""PyTorch reference datasets (official-style), used to check the framework-free ``data`` package.

Nothing here registers a model or loss, and nothing imports paddle. Note that ``torch_ref``'s
auto-import only walks top-level modules, so this sub-package is loaded only when imported.
"""

from .cityscapes import CityscapesSegmentation, input_transform

__all__ = ["CityscapesSegmentation", "input_transform"]
