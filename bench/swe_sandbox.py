"""SWE-v0's sandboxes side by side on a 1,000-file repository.

For each sandbox (docker with warm containers, docker starting one per reset, bwrap, local):
reset latency (a fresh workspace of 1,000 files and a fresh container or namespace), the
round trip of a trivial ``bash`` call, and whole expert episodes per minute (reset, the fix,
submit, the project's 1,000 tests). Resets are spaced by ``--episode-seconds`` (the time an
agent's turns would take, in which a warm pool starts the next container); round trips are
timed back to back once the pool is full. The repository is
generated: 1,000 modules, one small function each, and a parametrized test per module. The
docker rows end with their ratio to bwrap, measured in the same run.

Usage: python bench/swe_sandbox.py [--resets 20] [--episode-seconds 1] [--calls 30]
       [--episodes 6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from agentgym.protocols import ToolCall

FILES = 1000


def make_repository(root: Path) -> Path:
    """A project of ``FILES`` modules and a test for each."""
    package = root / "bigpkg" / "bigpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for i in range(FILES - 2):
        (package / f"mod_{i:04d}.py").write_text(
            f'"""Module {i}."""\n\n\ndef scale(x):\n    """Return x times {i % 7 + 2}."""\n'
            f"    return x * {i % 7 + 2}\n")
    tests = root / "bigpkg" / "tests"
    tests.mkdir()
    (tests / "test_modules.py").write_text(
        "import importlib\n\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({FILES - 2}))\n"
        "def test_scale(i):\n"
        "    module = importlib.import_module(f'bigpkg.mod_{i:04d}')\n"
        "    assert module.scale(3) == 3 * (i % 7 + 2)\n")
    return root / "bigpkg"


SANDBOXES = {"docker": ("docker", 2), "docker-cold": ("docker", 0), "bwrap": ("bwrap", 0),
             "local": ("local", 0)}


def measure(name: str, repo: Path, args: argparse.Namespace) -> dict[str, float]:
    sandbox, warm = SANDBOXES[name]
    env = agentgym.make("SWE-v0", sources=[str(repo)], tasks_per_source=2, sandbox=sandbox,
                        allow_unsandboxed=sandbox == "local", max_turns=None,
                        warm_containers=warm)
    resets, calls = [], []
    for i in range(args.resets):
        started = time.perf_counter()
        env.reset(seed=i)
        resets.append(time.perf_counter() - started)
        time.sleep(args.episode_seconds)
    for _ in range(args.calls):
        started = time.perf_counter()
        env.step(ToolCall("bash", {"command": "true"}).to_text())
        calls.append(time.perf_counter() - started)
    started = time.perf_counter()
    resolved = 0
    for i in range(args.episodes):
        _, info = env.reset(seed=i)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(info["expert_action"])
            done = terminated or truncated
        resolved += int(info["outcome_channels"]["resolved"])
    minutes = (time.perf_counter() - started) / 60
    env.close()
    return {"reset": statistics.median(resets), "call": statistics.median(calls),
            "episodes_per_min": args.episodes / minutes, "resolved": resolved / args.episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resets", type=int, default=20)
    parser.add_argument("--episode-seconds", type=float, default=1.0)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--sandboxes", nargs="+", choices=list(SANDBOXES),
                        default=list(SANDBOXES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repository(Path(tmp))
        files = sum(1 for p in repo.rglob("*") if p.is_file())
        rows = {name: measure(name, repo, args)
                for name in track(args.sandboxes, description="sandboxes")}
    table = Table(title=f"SWE-v0 sandboxes on a {files}-file repository (medians)")
    for column in ("sandbox", "reset ms", "bash round trip ms", "expert episodes/min",
                   "resolved", "round trip / bwrap"):
        table.add_column(column, justify="right")
    bwrap = rows.get("bwrap")
    for name, row in rows.items():
        ratio = f"{row['call'] / bwrap['call']:.2f}x" if bwrap else "-"
        table.add_row(name, f"{row['reset'] * 1000:.0f}", f"{row['call'] * 1000:.1f}",
                      f"{row['episodes_per_min']:.1f}", f"{row['resolved']:.0%}", ratio)
    Console().print(table)


if __name__ == "__main__":
    main()
