"""Model and loss registries of this tree (same names and keyword arguments in both trees)."""

from rsrepro.registry import Registry

MODELS = Registry("model")
LOSSES = Registry("loss")
