"""Node counts of two ONNX graphs of the same model, by op type: what Paddle2ONNX writes vs ``torch.onnx.export``.

    python benchmarks/onnx_graph_diff.py A.onnx B.onnx
    python benchmarks/onnx_graph_diff.py /tmp/bench_export_xxxx     # a folder speed.py left: model.onnx vs torch.onnx

``benchmarks/speed.py`` exports every model both ways into a ``bench_export_*`` folder of the system's temp
directory (model.onnx from Paddle2ONNX, torch.onnx from the torch twin); this prints, per op type, how many nodes
each graph has, the differing types first. A structural comparison, not a timing profile.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from typing import Dict, Sequence

import onnx


def op_counts(path: str) -> Dict[str, int]:
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} not found (an .onnx file was expected)")
    graph = onnx.load(path, load_external_data=False).graph
    return dict(collections.Counter(node.op_type for node in graph.node))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="two .onnx files, or one speed.py export folder")
    args = parser.parse_args(argv)
    if len(args.paths) == 1:
        first, second = (os.path.join(args.paths[0], name) for name in ("model.onnx", "torch.onnx"))
    elif len(args.paths) == 2:
        first, second = args.paths
    else:
        parser.error("give two .onnx files or one folder")
    a, b = op_counts(first), op_counts(second)
    print(f"nodes: {sum(a.values())} in {first}, {sum(b.values())} in {second}")
    rows = sorted(set(a) | set(b), key=lambda k: (a.get(k, 0) == b.get(k, 0), -abs(a.get(k, 0) - b.get(k, 0)), k))
    print(f"{'op type':24s} {'first':>7s} {'second':>7s}")
    for op in rows:
        print(f"{op:24s} {a.get(op, 0):7d} {b.get(op, 0):7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
