"""Does a candidate shortened recipe learn far above chance? One torch run (the official-style loop), no Paddle.

    python -m alignment.probe_recipe --case dasnet_v2 --size full --num_train 24 --num_val 8 --image 64 \
        --batch_size 4 --epochs 40 [--buildings 3 7] [--building_size 0.17 0.33] [--no_season_shift]

Choosing a ``--size full`` recipe for ``check_convergence`` is a search: the generated data and the length
must make the final metric land well above chance (the check's bar: chance + 0.10) while both frameworks'
three seeds fit the machine's time. Paddle's float32 training is ~3x torch's on the 2-core VM, so probing
with torch alone costs a quarter of a real attempt. This runs ``check_convergence``'s own torch side
(``convergence.run_torch``: same data generator, converted initial weights of seed 0, official optimizer,
schedule, loss and evaluation) on a case's size with the data / batch / length overridden, and prints the
metric before training and at four evaluations, the chance level and the wall time as one JSON line. It
proves nothing about alignment; it only tells which recipe is worth a full ``check_convergence`` run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Dict, List

from rsrepro.config import load_config

from . import convergence as cv
from .cases import CASES
from .check_convergence import CHANCE_MARGIN


def probe(case_name: str, size_name: str, data: Dict[str, Any], batch_size: int | None, length: tuple | None,
          evals: int = 4, seed: int = 0) -> Dict[str, Any]:
    """The torch side of ``check_convergence`` for ``case_name`` at ``size_name`` with ``data`` merged into the
    generator's arguments and ``batch_size`` / ``length`` replaced; returns chance, evaluations and seconds."""
    if case_name not in CASES or CASES[case_name].convergence is None:
        known = sorted(n for n, c in CASES.items() if c.convergence is not None)
        raise SystemExit(f"--case {case_name!r}: not a case with a training-alignment spec; one of {known}")
    case = CASES[case_name]
    spec = case.convergence
    base = spec.sizes[size_name]
    size = dataclasses.replace(base, data={**base.data, **data}, batch_size=batch_size or base.batch_size,
                               length=length or base.length, evals=evals)
    with cv.scratch_dir("probe_") as tmp:
        root = cv.generate(spec, size, os.path.join(tmp, "data"))
        chance = cv.chance_level(spec, root)
        shuffle, drop_last, names = cv.loader_flags(spec)
        total = cv.total_iterations(spec, size, root, drop_last)
        cfg = load_config(str(cv.REPO / spec.config), check=False)
        model = cv.initial_weights(cfg, seed, "float32", os.path.join(tmp, "init.pdparams"), case)
        initial = cv.torch_evaluate(spec, size, model, cv.torch_val_samples(spec, root))  # untrained: learning?
        model.train()
        start = time.perf_counter()
        run = cv.run_torch(spec, size, root, seed, "float32", model, total, evals, names, shuffle, drop_last)
    final = run["final"]
    return {"case": case_name, "size": size_name, "data": size.data, "batch_size": size.batch_size,
            "length": list(size.length), "iterations": total, "metric": spec.metric, "chance": chance,
            "initial": initial, "evals": run["evals"], "final": final, "above_chance": final - chance["value"],
            "meets_chance_bar": final - chance["value"] >= CHANCE_MARGIN,
            "torch_seconds": round(time.perf_counter() - start, 1)}


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", required=True, help="an alignment case with a convergence spec, e.g. dasnet_v2")
    parser.add_argument("--size", choices=["small", "full"], default="full", help="the size to start from")
    parser.add_argument("--num_train", type=int, help="generated training samples")
    parser.add_argument("--num_val", type=int, help="generated validation samples")
    parser.add_argument("--image", type=int, help="generated image size (change detection: square pairs)")
    parser.add_argument("--buildings", type=int, nargs=2, metavar=("MIN", "MAX"),
                        help="change detection: buildings per pair, max exclusive (generate_cdd)")
    parser.add_argument("--building_size", type=float, nargs=2, metavar=("LO", "HI"),
                        help="change detection: building side as a fraction of the image (generate_cdd)")
    parser.add_argument("--no_season_shift", action="store_true",
                        help="change detection: both times in one season (generate_cdd season_shift=False)")
    parser.add_argument("--batch_size", type=int)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int)
    length.add_argument("--iters", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = {k: v for k, v in (("num_train", args.num_train), ("num_val", args.num_val), ("size", args.image),
                              ("buildings", args.buildings), ("building_size", args.building_size))
            if v is not None}
    data.update({"season_shift": False} if args.no_season_shift else {})
    chosen = ("epochs", args.epochs) if args.epochs else (("iters", args.iters) if args.iters else None)
    print(json.dumps(probe(args.case, args.size, data, args.batch_size, chosen, seed=args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
