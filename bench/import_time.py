"""Time of ``python -c "import agentgym"`` in fresh processes, against bare ``python -c pass``.

Target: the import itself stays under 0.5 s. Prints the median of 5 runs of each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(code: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    bare = median_seconds("pass")
    full = median_seconds("import agentgym")
    print(f"python -c pass: {bare:.3f} s; python -c 'import agentgym': {full:.3f} s; "
          f"import alone: {full - bare:.3f} s (target < 0.5 s: "
          f"{'met' if full < 0.5 else 'NOT met'})")
