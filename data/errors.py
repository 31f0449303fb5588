"""Errors raised by the data pipeline.

``DatasetError`` is a ``ValueError`` so that callers that already catch bad-input ``ValueError``s keep
working; its message always names the file (and line, where there is one) and says what was expected.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file or folder is missing, unreadable, or holds values the dataset cannot use."""


class TransformConfigError(ValueError):
    """A transform configuration names an unknown transform or passes an option it does not take."""
