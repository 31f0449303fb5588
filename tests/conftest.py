"""Shared test fixtures. Tests run on CPU with small shapes; full sizes need ``--full``."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", help="also run the full-size checks")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="full-size check: run with --full")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import random

    import numpy as np
    import paddle
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    paddle.seed(0)
    paddle.set_device("cpu")
    yield
