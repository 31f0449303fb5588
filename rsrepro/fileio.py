"""Atomic file writing: a reader never sees a half-written metric file, image or checkpoint.

Every writer goes through :func:`atomic_save`: the data is written to a temporary file in the SAME
folder (so ``os.replace`` is a rename on one file system, which POSIX makes atomic), flushed to disk
with ``fsync``, then renamed over the target. On any error (or Ctrl-C) the temporary file is removed
and the target is left as it was.

The temporary name keeps the target's extension (``.metric.tmp-1a2b3c.json`` for ``metric.json``),
because some writers choose the format from it (matplotlib ``savefig``) or append one when it is
missing (``np.save`` adds ``.npy``: give it a target that ends in ``.npy``).

Public API:
    atomic_save(path, write_fn)                 write_fn(tmp_path) writes the file
    atomic_write_bytes(path, data)
    atomic_write_text(path, text, encoding="utf-8")
    atomic_write_json(path, obj, indent=2)      numpy scalars/arrays converted, NaN/inf -> null
    to_jsonable(obj)                            the conversion used by atomic_write_json
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "to_jsonable",
    "pause_point",
]


def _prepare_folder(path: Path) -> Path:
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot write {str(path)!r}: its folder {str(folder)!r} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(
            f"cannot write {str(path)!r}: cannot create its folder {str(folder)!r} ({exc.strerror or exc})"
        ) from exc
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {str(path)!r}: a directory of that name exists")
    return folder


def _reserve_temp(path: Path, folder: Path) -> Path:
    """Create an empty, uniquely named file next to ``path`` (mode 0666 minus the umask)."""
    for _ in range(100):
        tmp = folder / f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise PermissionError(
                f"cannot write {str(path)!r}: folder {str(folder)!r} is not writable ({exc.strerror or exc})"
            ) from exc
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not find a free temporary name in {str(folder)!r}")


PAUSE_ENV = "PADDLE_RS_TEST_PAUSE_AT"
PAUSE_MARKER_ENV = "PADDLE_RS_TEST_PAUSE_MARKER"


def pause_point(name: str) -> None:
    """Test-only hook (tests/test_kill_resume.py); a no-op unless ``$PADDLE_RS_TEST_PAUSE_AT == name``.

    Then the process writes ``name`` to the file ``$PADDLE_RS_TEST_PAUSE_MARKER`` and sleeps, so that a
    test can SIGKILL it at exactly this point (e.g. ``before-rename:iter_00000004.pdckpt``: the
    checkpoint is fully written to its temporary file, the rename has not happened).
    """
    if os.environ.get(PAUSE_ENV) != name:
        return
    import time

    marker = os.environ.get(PAUSE_MARKER_ENV)
    if marker:
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(name)
    time.sleep(300)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; some file systems refuse fsync on a directory — harmless.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(path: PathLike, write_fn: Callable[[str], Any]) -> Path:
    """Write ``path`` atomically: ``write_fn(tmp_path)`` writes the content to ``tmp_path``.

    Use it for any library writer, e.g. ``atomic_save(p, lambda t: paddle.save(state, t))``,
    ``atomic_save(p, lambda t: fig.savefig(t))``. Missing parent folders are created.

    Returns:
        The final path.

    Raises:
        PermissionError / NotADirectoryError naming the folder when it cannot be written;
        whatever ``write_fn`` raises (the temporary file is removed first).
    """
    target = Path(os.fspath(path))
    folder = _prepare_folder(target)
    tmp = _reserve_temp(target, folder)
    try:
        write_fn(str(tmp))
        if not tmp.is_file():
            raise FileNotFoundError(
                f"the writer for {str(target)!r} did not produce its temporary file {str(tmp)!r} "
                "(did it rename or delete it?)"
            )
        _fsync_file(tmp)
        pause_point(f"before-rename:{target.name}")
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)
    return target


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes({str(path)!r}): expected bytes, got {type(data).__name__}")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_save(path, write)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text({str(path)!r}): expected str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and Paths to plain JSON types.

    Non-finite floats (NaN, +-inf) become ``None`` (JSON ``null``): ``json`` would otherwise write
    ``NaN``, which is not JSON and which many readers reject. Dict keys become strings.
    """
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r:.80}")


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (numpy types converted, see :func:`to_jsonable`)."""
    text = json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")
