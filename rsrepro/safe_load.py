"""Reading pickled weight files without running code from them.

``paddle.save`` writes ``.pdparams`` / ``.pdopt`` files and our ``.pdckpt`` checkpoints as pickles, and
``paddle.load`` reads them with plain :mod:`pickle`, which calls whatever function the file names:
a downloaded ``.pdparams`` can run ``os.system`` the moment it is evaluated. This module reads the same
files with an unpickler that resolves only the globals such files need (listed in
:data:`ALLOWED_GLOBALS`, each with the reason) and refuses any other with :class:`UntrustedPickleError`,
which names the file, the refused global, and how to opt in. The bytes are parsed by Python's own
unpickler, so an allowed file gives exactly what plain pickle gives.

What Paddle 3.3.1 writes (checked by listing the globals of real files, tests/test_safe_load.py):

- a state dict (model or optimizer, any protocol): numpy arrays, plus ``_codecs.encode`` for the raw
  bytes of an array in protocol 2 (Paddle's ``protocol=2`` option; Paddle 2.0's default);
- any other object (our checkpoints): each tensor as ``tuple((name, ndarray))`` (a ``builtins.tuple``
  call), ``collections.OrderedDict`` state dicts, numpy scalars (``numpy.core.multiarray.scalar``), and
  Paddle's RNG state objects (``paddle.base.libpaddle.GeneratorState``, restored from plain numbers).

Not allowed: ``builtins.eval``, which ``paddle.save`` uses for static-graph ``DenseTensor`` objects (the
dygraph package never saves one), classes of models or layers, and everything else.

Trust is decided per call (``trust_pickle=True``) or for a block of code (``with trusted_pickle():``,
what the tools' ``--trust-pickle`` flag does), so a whole training run can trust its ``--resume`` file
and its ``model.pretrained`` file without threading a flag through every constructor.

Public API:
    load_pickle(path, trust_pickle=None)   the unpickled object (None: trust only inside trusted_pickle())
    trusted_pickle(enabled=True)           context manager: calls with trust_pickle=None trust their files
    pickle_trusted()                       whether the current context trusts pickles
    UntrustedPickleError                   the refusal (a pickle.UnpicklingError)
    ALLOWED_GLOBALS                        (module, name) -> why it is needed
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import pickle
from typing import Any, Dict, Iterator, Tuple

__all__ = [
    "ALLOWED_GLOBALS",
    "UntrustedPickleError",
    "load_pickle",
    "pickle_trusted",
    "trusted_pickle",
]

# Each entry is a data constructor: it builds an array, scalar, container or RNG state from plain values
# and cannot call anything the file chooses.
ALLOWED_GLOBALS: Dict[Tuple[str, str], str] = {
    ("numpy.core.multiarray", "_reconstruct"): "numpy array (every tensor is saved as one)",
    ("numpy._core.multiarray", "_reconstruct"): "numpy array, as numpy 2 names it",
    ("numpy", "ndarray"): "numpy array type (argument of _reconstruct)",
    ("numpy", "dtype"): "numpy array element type",
    ("numpy.core.multiarray", "scalar"): "numpy scalar (a metric value, a step count)",
    ("numpy._core.multiarray", "scalar"): "numpy scalar, as numpy 2 names it",
    ("_codecs", "encode"): "raw bytes of an array in a protocol-2 pickle",
    ("builtins", "tuple"): "paddle.save writes each tensor as tuple((name, ndarray))",
    ("builtins", "set"): "a set in a protocol-2/3 pickle",
    ("builtins", "frozenset"): "a frozenset in a protocol-2/3 pickle",
    ("collections", "OrderedDict"): "Layer.state_dict() is an OrderedDict",
    ("paddle.base.libpaddle", "GeneratorState"): "Paddle RNG state in a training checkpoint",
}
# Protocol-2 pickles (Python 2 compatible names) spell ``builtins`` this way.
_MODULE_ALIASES = {"__builtin__": "builtins"}

_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("paddle_rs_trust_pickle", default=False)


class UntrustedPickleError(pickle.UnpicklingError):
    """A pickled file names a global that weight files never need; it was not loaded."""


def pickle_trusted() -> bool:
    """Whether the current context trusts pickled files (inside ``trusted_pickle()``)."""
    return _TRUST.get()


@contextlib.contextmanager
def trusted_pickle(enabled: bool | None = True) -> Iterator[None]:
    """Within the block, loads called with ``trust_pickle=None`` use plain pickle (``enabled=True``) or
    the restricted unpickler (``False``); ``None`` leaves the surrounding setting as it is."""
    if enabled is None:
        yield
        return
    token = _TRUST.set(bool(enabled))
    try:
        yield
    finally:
        _TRUST.reset(token)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: Any, path: str) -> None:
        super().__init__(handle, encoding="latin1")  # what paddle.load passes
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        if (module, name) not in ALLOWED_GLOBALS:
            raise UntrustedPickleError(
                f"{self._path}: refused to unpickle the global '{module}.{name}': Paddle weights files and "
                f"checkpoints hold only arrays, numbers, strings and containers, and unpickling anything else "
                f"can run code from the file. If you trust its source, load it with trust_pickle=True "
                f"(command line: --trust-pickle)")
        return super().find_class(module, name)


def load_pickle(path: str, trust_pickle: bool | None = None) -> Any:
    """Unpickle ``path`` like ``paddle.load`` does (``encoding='latin1'``), with only
    :data:`ALLOWED_GLOBALS` unless trusted (``trust_pickle=True``, or ``None`` inside
    :func:`trusted_pickle`). Refusals raise :class:`UntrustedPickleError`; a damaged file raises what
    pickle raises (``UnpicklingError``, ``EOFError``, ...)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    trust = pickle_trusted() if trust_pickle is None else bool(trust_pickle)
    with open(path, "rb") as handle:
        if trust:
            return pickle.load(handle, encoding="latin1")  # noqa: S301 (the caller trusts the file)
        return _RestrictedUnpickler(handle, path).load()
