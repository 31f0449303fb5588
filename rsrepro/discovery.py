"""Import every module of a package so that its ``@MODELS.register`` / ``@LOSSES.register`` run."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable


def import_submodules(package_name: str, package_path: Iterable[str], skip: Iterable[str] = ()) -> None:
    skipped = set(skip)
    for info in sorted(pkgutil.iter_modules(list(package_path)), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in skipped or info.ispkg:
            continue
        importlib.import_module(f"{package_name}.{info.name}")
