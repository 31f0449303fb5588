"""Command-line plumbing shared by the tools (``tools/*.py``): config loading with overrides, the protocol
flags, the ``--trust-pickle`` flag, and ``run_cli`` (config / input /
output errors print one clear message and exit 2; a diverged training exits 3)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, List, Sequence

from rsrepro.config import ConfigError
from rsrepro.data.errors import DatasetError
from rsrepro.safe_load import UntrustedPickleError

from ..convert import ConversionError
from .backends import BackendError
from .run_config import load_run_config
from .trainer import TrainingDivergedError
from .weights import CheckpointError

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
    return load_run_config(args.config, list(args.opts) + list(extra))


# Files or folders that cannot be read or written (read-only, a file in the way): OSErrors naming the path.
_OUTPUT_ERRORS = (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def run_cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main``; config / input / output-folder errors print one clear message and exit 2."""
    try:
        main(argv)
    except (ConfigError, DatasetError, FileNotFoundError, ConversionError, UntrustedPickleError,
            BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except _OUTPUT_ERRORS as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) and str(exc.filename) not in str(exc) else ""
        print(f"error: {exc}{where}", file=sys.stderr)
        return EXIT_CONFIG
    except TrainingDivergedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
