"""Losses; every module here registers its losses in ``LOSSES`` on import."""

from common.discovery import import_submodules

import_submodules(__name__, __path__)
