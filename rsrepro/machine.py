"""What machine a measurement ran on (framework-free): wall times are only comparable on the same CPU.

Paddle's CPU training speed depends on the processor far more than torch's (benchmarks/README.md: the same
build is on par with torch on one 2-core VM and 2.5-3.9x slower on another), so every recorded time carries
the CPU it was measured on.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_summary() -> str:
    """``"<cpu name>, <n> cores"``: one line for a report."""
    return f"{cpu_name()}, {os.cpu_count()} cores"
