"""Shared command-line plumbing of the tools: config loading with overrides, protocol flags, errors."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

EXIT_CONFIG = 2  # bad config / arguments / input files
EXIT_DIVERGED = 3  # training stopped on a NaN/Inf loss


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required, help="YAML run config (configs/<model>/<experiment>.yml)")
    parser.add_argument("-o", "--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. train.iters=100 optimizer.weight_decay=0 "
                             "dataset.train.root=/data/cityscapes")


def add_protocol_args(parser: argparse.ArgumentParser) -> None:
    seg = parser.add_argument_group("segmentation protocol (default: the config's eval section)")
    seg.add_argument("--mode", choices=["whole", "slide"], help="whole image or sliding window")
    seg.add_argument("--multi_scales", action="store_true", help="use eval.ms_scales (DANet: 8 scales)")
    seg.add_argument("--scales", type=float, nargs="+", help="explicit scales (implies multi-scale when > 1)")
    seg.add_argument("--flip", action="store_true", default=None, help="add the horizontally flipped pass")
    seg.add_argument("--no_flip", dest="flip", action="store_false", help="no flipped pass")
    seg.add_argument("--crop_size", type=int, nargs="+", help="window size (one int or H W); implies --mode slide")
    seg.add_argument("--stride", type=int, nargs="+", help="window stride (default: DANet rule)")
    seg.add_argument("--base_size", type=int, help="long side at scale 1 (DANet eval: 2048)")
    cd = parser.add_argument_group("change detection")
    cd.add_argument("--thresholds", help="sweep: dasnet_official | dasnet_v2 | start:stop:num")
    cd.add_argument("--threshold", type=float, help="fixed decision threshold")
    cd.add_argument("--decision", choices=["threshold", "argmax"])


def _size(values: List[int] | None) -> Any:
    if values is None:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return list(values)
    raise SystemExit("a size is one int or two (H W)")


def protocol_overrides(args: argparse.Namespace) -> List[str]:
    """The protocol flags as config overrides (so they are validated like the file)."""
    out: List[str] = []
    if getattr(args, "crop_size", None):
        out += [f"eval.crop_size={_size(args.crop_size)}", "eval.mode=slide"]
    if getattr(args, "mode", None):
        out.append(f"eval.mode={args.mode}")
    if getattr(args, "stride", None):
        out.append(f"eval.stride={_size(args.stride)}")
    if getattr(args, "base_size", None):
        out.append(f"eval.base_size={args.base_size}")
    if getattr(args, "scales", None):
        out += [f"eval.scales={list(args.scales)}", "eval.multi_scales=false"]
    elif getattr(args, "multi_scales", False):
        out.append("eval.multi_scales=true")
    if getattr(args, "flip", None) is not None:
        out.append(f"eval.flip={'true' if args.flip else 'false'}")
    if getattr(args, "thresholds", None):
        spec = args.thresholds
        if spec.count(":") == 2:
            start, stop, num = spec.split(":")
            spec = f"{{start: {float(start)}, stop: {float(stop)}, num: {int(num)}}}"
        out.append(f"eval.thresholds={spec}")
    if getattr(args, "threshold", None) is not None:
        out.append(f"eval.threshold={args.threshold}")
    if getattr(args, "decision", None):
        out.append(f"eval.decision={args.decision}")
    return out


def add_trust_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-pickle", dest="trust_pickle", action="store_true",
                        help="read weight / checkpoint files (also model.pretrained) with plain pickle, which "
                             "can run code from the file: files from a source you trust only (default: only "
                             "arrays, numbers, strings and containers are unpickled)")


def load(args: argparse.Namespace, extra: Sequence[str] = ()) -> Dict[str, Any]:
    from paddle_models.engine.builder import load_run_config

    return load_run_config(args.config, list(args.opts) + list(extra))


def load_weights(model: Any, path: str, trust_pickle: bool | None = None) -> Dict[str, Any]:
    """``engine.builder.load_weights`` for the tools: a file that cannot be read or does not fit the
    model (its ValueErrors) becomes a CheckpointError naming ``path`` (one message, exit 2); a file
    refused by the safe unpickler raises ``UntrustedPickleError`` (exit 2 in run_cli)."""
    from paddle_models.engine.builder import load_weights as load
    from paddle_models.engine.checkpoint import CheckpointError

    try:
        return load(model, path, trust_pickle=trust_pickle)
    except CheckpointError:
        raise
    except ValueError as exc:
        text = str(exc)
        raise CheckpointError(text if path in text else f"{path}: {text}") from None


# Files or folders that cannot be read or written (read-only, a file in the way): OSErrors naming the path.
_OUTPUT_ERRORS = (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def run_cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main``; config / input / output-folder errors print one clear message and exit 2."""
    from alignment.convert import ConversionError
    from common.config import ConfigError
    from common.safe_load import UntrustedPickleError
    from data.errors import DatasetError

    try:
        main(argv)
    except (ConfigError, DatasetError, FileNotFoundError, ConversionError, UntrustedPickleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except _OUTPUT_ERRORS as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) and str(exc.filename) not in str(exc) else ""
        print(f"error: {exc}{where}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        from paddle_models.engine.checkpoint import CheckpointError
        from paddle_models.engine.trainer import TrainingDivergedError

        if isinstance(exc, TrainingDivergedError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_DIVERGED
        if isinstance(exc, CheckpointError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        raise
    return 0
