"""Small synthetic datasets written in the real layouts and encodings, for tests and demos.

None of the real datasets can be downloaded on these machines, so every test and demo runs on data
made here. The images are learnable, not noise: each is a street scene built from regions (sky,
buildings, vegetation, road with lane marks, sidewalks, terrain, poles with signs, cars, persons, the
ego-vehicle bonnet and a rectification border), and each class has its own colour and texture, jittered
per image, so a small segmentation network can fit it.

One module per dataset family (``cityscapes``, ``cdd`` with LEVIR-CD, ``isaid``); ``GENERATORS`` names each
generator's command-line options and run function. Command line (``__main__``)::

    python -m rsrepro.data.synthetic --dataset cityscapes --out DIR [--num_train 8] [--num_val 4]
        [--height 128] [--width 256] [--seed 0] [--label_type labelIds] [--cities aachen bremen]
    python -m rsrepro.data.synthetic --dataset cdd --out DIR [--num_train 8] [--num_val 4] [--num_test 4]
        [--size 256] [--seed 0] [--label_format jpg0255|png01] [--no_binary] [--no_lists]
    python -m rsrepro.data.synthetic --dataset levir --out DIR [--num_train 4] [--num_val 2] [--num_test 2]
        [--size 1024] [--seed 0]
    python -m rsrepro.data.synthetic --dataset isaid --out DIR [--num_train 2] [--num_val 2] [--height 1000]
        [--width 1200] [--min_objects 24] [--max_objects 48] [--unknown_pixels 0] [--seed 0]
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, Sequence, Tuple

from .cdd import _cdd_arguments, _cdd_run, _levir_arguments, _levir_run, change_pair, generate_cdd, generate_levir
from .cityscapes import _cityscapes_arguments, _cityscapes_run, cityscapes_scene, generate_cityscapes
from .isaid import _isaid_arguments, _isaid_run, generate_isaid, isaid_scene

__all__ = [
    "generate_cityscapes",
    "cityscapes_scene",
    "generate_cdd",
    "generate_levir",
    "change_pair",
    "generate_isaid",
    "isaid_scene",
    "GENERATORS",
    "main",
]

# name -> (add the generator's options to a parser, generate from the parsed arguments -> a summary dict)
AddArguments = Callable[[Any], None]
Generate = Callable[[argparse.Namespace], Dict[str, Any]]
GENERATORS: Dict[str, Tuple[AddArguments, Generate]] = {
    "cityscapes": (_cityscapes_arguments, _cityscapes_run),
    "cdd": (_cdd_arguments, _cdd_run),
    "levir": (_levir_arguments, _levir_run),
    "isaid": (_isaid_arguments, _isaid_run),
}


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    """``python -m rsrepro.data.synthetic --dataset NAME --out DIR [dataset options]``."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--dataset", choices=sorted(GENERATORS))
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog="python -m rsrepro.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(GENERATORS), help="dataset layout to write")
    parser.add_argument("--out", required=True, help="output root folder")
    if known.dataset:
        GENERATORS[known.dataset][0](parser.add_argument_group(f"{known.dataset} options"))
    args = parser.parse_args(argv)
    summary = GENERATORS[args.dataset][1](args)
    counts = ", ".join(f"{split}: {len(items)}" for split, items in summary.get("files", {}).items())
    print(f"wrote synthetic {args.dataset} to {args.out} ({counts}) in {summary.get('seconds', 0):.2f} s")
    return summary
