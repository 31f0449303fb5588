"""Convert an official PyTorch checkpoint (or a torchvision ResNet ImageNet file) to Paddle.

    python tools/convert_weights.py --model danet --backbone resnet101 --set multi_grid=true \
        --src DANet101.pth.tar --dst danet101.pdparams [--verify]
    python tools/convert_weights.py --model danet --src resnet50-19c8e357.pth --dst r50_init.pdparams

Full checkpoints must match the model exactly (every missing, unexpected or shape-mismatched key
is listed). A plain torchvision ResNet state dict (``conv1.weight``, ``layer1.0...``, ``fc.weight``)
initialises the model's ResNet backbone only: the output holds just those keys and the tool
reports what it did not load. ``.pth`` files are opened with ``weights_only=True``; whole pickled
models (LSNet's official files) need ``--trust-pickle``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Sequence


def parse_sets(items: Sequence[str]) -> Dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def is_torchvision_resnet(state_dict: Dict[str, Any]) -> bool:
    return "conv1.weight" in state_dict and any(k.startswith("layer1.") for k in state_dict)


def convert_checkpoint(model_name: str, model_kwargs: Dict[str, Any], src: str, dst: str,
                       trust_pickle: bool = False, verify: bool = False) -> Dict[str, Any]:
    """Library entry point of this tool; returns a report dict."""
    import paddle

    import paddle_models
    from paddle_models.backbones import ResNet
    from paddle_models.convert import (
        convert_state_dict,
        find_sublayer_prefix,
        load_torch_checkpoint,
    )
    from rsrepro.fileio import atomic_save

    state_dict = load_torch_checkpoint(src, trust_pickle=trust_pickle)
    model = paddle_models.build_model(model_name, **model_kwargs)
    report: Dict[str, Any] = {"src": src, "dst": dst, "model": model_name, "kwargs": model_kwargs}
    if is_torchvision_resnet(state_dict):
        prefix = find_sublayer_prefix(model, ResNet)
        backbone = model if not prefix else dict(model.named_sublayers())[prefix[:-1]]
        # torchvision's ImageNet classifier is unused by encoders built without one (FactSeg).
        has_fc = any(k.startswith("fc.") for k in backbone.state_dict())
        unused = [k for k in state_dict if k.startswith("fc.") and not has_fc]
        converted = convert_state_dict({k: v for k, v in state_dict.items() if k not in unused}, backbone)
        converted = {prefix + k: v for k, v in converted.items()}
        not_loaded: List[str] = [k for k in model.state_dict() if k not in converted]
        report.update(kind="backbone", prefix=prefix, loaded=len(converted), not_loaded=not_loaded,
                      unused=unused)
    else:
        converted = convert_state_dict(state_dict, model)
        report.update(kind="full", loaded=len(converted), not_loaded=[])
    atomic_save(dst, lambda tmp: paddle.save(converted, str(tmp)))
    if verify and report["kind"] == "full":
        report["verify_max_rel_diff"] = verify_forward(model_name, model_kwargs, state_dict, converted)
    return report


def verify_forward(model_name: str, model_kwargs: Dict[str, Any], torch_sd, paddle_sd) -> float:
    """Max relative output difference of both frameworks on one random 1x3x64x64 input (pair)."""
    import numpy as np
    import paddle
    import torch

    import paddle_models
    import torch_ref
    from rsrepro.outputs import flatten_outputs

    torch_model = torch_ref.build_model(model_name, **model_kwargs).eval()
    torch_model.load_state_dict(torch_sd, strict=True)
    paddle_model = paddle_models.build_model(model_name, **model_kwargs)
    paddle_model.set_state_dict(paddle_sd)
    paddle_model.eval()
    x = np.random.RandomState(0).rand(1, 3, 64, 64).astype("float32")
    n_inputs = 2 if model_name in ("dasnet", "dasnet_v2", "lsnet") else 1
    with torch.no_grad():
        ref = flatten_outputs(torch_model(*[torch.from_numpy(x)] * n_inputs))
    with paddle.no_grad():
        out = flatten_outputs(paddle_model(*[paddle.to_tensor(x)] * n_inputs))
    return max(float(np.abs(ref[k] - out[k]).max() / (np.abs(ref[k]).max() or 1.0)) for k in ref)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="registered model name, e.g. danet")
    parser.add_argument("--backbone", default=None, help="e.g. resnet50 / resnet101 (if the model has one)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other build_model arguments, e.g. multi_grid=true num_classes=19")
    parser.add_argument("--src", required=True, help="torch checkpoint (.pth / .pth.tar)")
    parser.add_argument("--dst", required=True, help="output .pdparams")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow whole pickled models (runs code from the file: trusted sources only)")
    parser.add_argument("--verify", action="store_true", help="compare both frameworks' outputs")
    args = parser.parse_args(argv)
    from paddle_models.convert import ConversionError

    kwargs = parse_sets(args.set)
    if args.backbone:
        kwargs["backbone"] = args.backbone
    try:
        report = convert_checkpoint(args.model, kwargs, args.src, args.dst, args.trust_pickle, args.verify)
    except (ConversionError, KeyError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report['dst']}: {report['loaded']} tensors ({report['kind']} checkpoint)")
    if report["not_loaded"]:
        print(f"not loaded from {args.src} ({len(report['not_loaded'])} keys, e.g. "
              f"{', '.join(report['not_loaded'][:5])}); they keep their initialisation")
    if report.get("unused"):
        print(f"ignored from {args.src} (this model has no such layer): {', '.join(report['unused'])}")
    if "verify_max_rel_diff" in report:
        print(f"verify: max relative output difference torch vs paddle {report['verify_max_rel_diff']:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
