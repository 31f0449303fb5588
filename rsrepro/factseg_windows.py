"""FactSeg's window rule under its older names (training patches, sliding-window evaluation).

The rule has ONE implementation, in ``rsrepro/windows.py`` (``factseg_axis_windows``, ``factseg_windows``,
``factseg_window_rows``, ``factseg_max_coverage``; the official SimpleCV rule is described there). This
module only keeps the names that ``data/isaid.py`` and older code import.
"""

from __future__ import annotations

from .windows import FactSegWindowRow as WindowRow
from .windows import Window, factseg_windows
from .windows import factseg_axis_windows as axis_windows
from .windows import factseg_max_coverage as max_coverage
from .windows import factseg_window_rows as window_rows

__all__ = ["Window", "axis_windows", "factseg_windows", "WindowRow", "window_rows", "max_coverage"]
