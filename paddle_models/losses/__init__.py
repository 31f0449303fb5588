"""Losses; every module here registers its losses in ``LOSSES`` on import."""

from rsrepro.discovery import import_submodules

import_submodules(__name__, __path__)
