"""What every benchmark here shares: timing a process, and printing the figures."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float | None = None
    phases: str = ""  # itemctl's own phase timings (-v), when it printed them


def run(argv: list[str], *, stdout=subprocess.DEVNULL, env=None) -> Run:
    """Run a process to completion; its own wall time and peak RSS (wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[:8])}... failed:\n{stderr}")
    phases = [line.removeprefix("import timings: ") for line in stderr.splitlines() if line.startswith("import timings: ")]
    return Run(elapsed, usage.ru_maxrss / 1024, phases[-1] if phases else "")


def print_runs(rows: int, results: dict[str, Run], *, rss_for: str | None = None) -> None:
    """One line per step (seconds, rows/s, peak RSS), then itemctl's phases. ``rss_for``:
    the step letters whose peak RSS is worth showing (None: all)."""
    print(f"{'step':45} {'seconds':>8} {'rows/s':>10} {'peak RSS':>9}")
    for name, result in results.items():
        rss = f"{result.peak_rss_mb:.0f} MB" if rss_for is None or name[0] in rss_for else ""
        print(f"{name:45} {result.seconds:8.2f} {rows / result.seconds:10,.0f} {rss:>9}")
    for name, result in results.items():
        if result.phases:
            print(f"  phases of {name.split()[0]}: {result.phases}")


def print_ratios(results: dict[str, Run], targets) -> None:
    """Each (label, step, reference seconds, target) as a ratio against its target."""
    for label, key, reference, target in targets:
        if key in results:
            ratio = results[key].seconds / reference
            print(f"{label:32} {ratio:5.2f}x   (target <= {target}x: {'met' if ratio <= target else 'MISSED'})")
