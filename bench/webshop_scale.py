"""WebShop-v0 at 100k products: index build, index size, step latency, memory of 8 instances.

Builds (or loads) the catalog's BM25 index in a fresh cache folder, then runs 8 env
instances in this process, all sharing one catalog and one memory-mapped index, through
expert and random episodes, timing every ``step``. Targets: step p50 under 5 ms, 8 instances
under 2 GB resident in total. Run: python bench/webshop_scale.py [--products 100000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=10, help="per instance")
    args = parser.parse_args()
    console = Console()
    base = rss_mb()
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        with console.status(f"generating {args.products:,} products and indexing them"):
            first = agentgym.make("WebShop-v0", catalog_size=args.products, cache_dir=cache)
        build = time.perf_counter() - started
        index_mb = folder_mb(Path(cache))
        envs = [first] + [agentgym.make("WebShop-v0", catalog_size=args.products,
                                        cache_dir=cache) for _ in range(args.instances - 1)]
        rng = np.random.default_rng(0)
        latencies = []
        for episode in track(range(args.episodes), description="episodes"):
            for n, env in enumerate(envs):
                obs, info = env.reset(seed=episode * args.instances + n)
                expert = (episode + n) % 2 == 0
                while True:
                    options = info["admissible_actions"]
                    action = info["expert_action"] if expert else \
                        options[int(rng.integers(len(options)))]
                    t = time.perf_counter()
                    obs, reward, terminated, truncated, info = env.step(action)
                    latencies.append(time.perf_counter() - t)
                    if terminated or truncated:
                        break
        total = rss_mb()
        for env in envs:
            env.close()
    table = Table(title=f"WebShop-v0, {args.products:,} products, {args.instances} instances")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    table.add_row("catalog + index build (first instance)", f"{build:.1f} s", "")
    table.add_row("index on disk (BM25 + product text)", f"{index_mb:.0f} MB", "")
    table.add_row(f"step latency p50 ({len(latencies):,} steps)", f"{p50:.2f} ms", "< 5 ms")
    table.add_row("step latency p99", f"{p99:.2f} ms", "")
    table.add_row(f"resident memory, {args.instances} instances (process total)",
                  f"{total:.0f} MB", "< 2048 MB")
    table.add_row("of which before any env existed", f"{base:.0f} MB", "")
    console.print(table)


if __name__ == "__main__":
    main()
