"""What the trainer writes while it runs: the log (console through tqdm + ``train.log``), the running
averages between two log lines (PaddleSeg's ``TimeAverager``; ETA by PaddleSeg's ``calculate_eta``) and
the loss / metric curves PNG.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Dict, List, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from paddleseg.utils.timer import TimeAverager, calculate_eta
from tqdm import tqdm

from rsrepro.fileio import atomic_save

__all__ = ["format_duration", "make_logger", "LogWindow", "plot_history"]


def format_duration(seconds: float) -> str:
    """``HH:MM:SS`` (PaddleSeg's ETA format)."""
    return calculate_eta(1, max(0.0, float(seconds)))


class _TqdmHandler(logging.Handler):
    """Console lines that do not break a running progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stdout)


def make_logger(work_dir: str, rank: int) -> logging.Logger:
    """The run's logger: console (rank 0: info, others: warnings) and ``train.log`` (``train.rank<r>.log``)."""
    logger = logging.getLogger(f"paddle_rs.train.{os.path.abspath(work_dir)}.{rank}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = _TqdmHandler()
    console.setFormatter(fmt)
    console.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.addHandler(console)
    name = "train.log" if rank == 0 else f"train.rank{rank}.log"
    file_handler = logging.FileHandler(os.path.join(work_dir, name), encoding="utf-8")
    file_handler.setFormatter(fmt)
    logger.addHandler(file_handler)
    return logger


class LogWindow:
    """Running averages between two log lines: loss terms, batch and reader cost, samples per second."""

    def __init__(self) -> None:
        self.batch = TimeAverager()
        self.reader = TimeAverager()
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sums: Dict[str, float] = {}
        self.batch.reset()
        self.reader.reset()

    def add(self, losses: Mapping[str, float], batch_cost: float, reader_cost: float, samples: int) -> None:
        self.count += 1
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.batch.record(batch_cost, num_samples=samples)
        self.reader.record(reader_cost)

    def losses(self) -> Dict[str, float]:
        n = max(1, self.count)
        return {k: v / n for k, v in self.sums.items()}

    def batch_cost(self) -> float:
        return float(self.batch.get_average())

    def reader_cost(self) -> float:
        return float(self.reader.get_average())

    def ips(self, world: int = 1) -> float:
        """Samples per second over all ``world`` processes."""
        return float(self.batch.get_ips_average()) * world

    def eta(self, remaining_iterations: int) -> str:
        return calculate_eta(remaining_iterations, self.batch_cost())


def plot_history(history: List[Mapping[str, Any]], path: str, title: str = "") -> str:
    """Loss terms (left) and evaluation metrics (right) against the iteration, as a PNG (atomic)."""
    train = [r for r in history if r.get("type") == "train"]
    evals = [r for r in history if r.get("type") == "eval"]
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    if train:
        iters = [r["iter"] for r in train]
        terms = [k for k in train[-1]["losses"]]
        for key in terms:
            ax.plot(iters, [r["losses"].get(key, np.nan) for r in train], label=key,
                    linewidth=2.0 if key == "loss" else 1.0)
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (log scale)")
    ax.grid(True, alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    if evals:
        iters = [r["iter"] for r in evals]
        for key in evals[-1]["metrics"]:
            if key == "best_threshold":
                continue
            ax2.plot(iters, [r["metrics"].get(key, np.nan) for r in evals], "o-", label=key)
        ax2.legend(loc="lower right", fontsize=8)
    if train:
        ax3 = ax2.twinx()
        ax3.plot([r["iter"] for r in train], [r["lr"] for r in train], color="gray", alpha=0.5, linewidth=1)
        ax3.set_ylabel("lr (gray)")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("evaluation metric")
    ax2.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return str(atomic_save(path, lambda tmp: fig.savefig(tmp, format="png")))
