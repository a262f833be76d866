"""Rollout throughput against a slow OpenAI-compatible server, by requests in flight.

A local chat server (its own process, one asyncio loop, HTTP/1.1 keep-alive) answers every
request after 100 ms, however many arrive at once, as a batching inference server roughly
does. ``OpenAIChatPolicy`` plays
TextWorld through it at concurrency 1, 8, 32 and 64, one env (an ``EnvPool`` worker process)
per episode in flight, and the script prints turns per second and the speed-up over
concurrency 1, all in one run.

Usage: python bench/rollout_concurrency.py [--episodes 256] [--max-turns 10]
Target: at concurrency 64, at least 30x the turns/s of concurrency 1.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import httpx
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from agentgym.pool import EnvPool

SERVER = r"""
import asyncio, hashlib, json, sys

COMMANDS = ["look", "inventory", "go east", "go west", "go north", "go south", "take key"]
CRLF = b"\r\n"


def reply(body):
    last = body["messages"][-1]["content"]
    pick = hashlib.sha1(f"{len(body['messages'])}|{last}".encode()).digest()[0]
    return json.dumps({"choices": [{"message": {"role": "assistant",
                       "content": f"<action>{COMMANDS[pick % len(COMMANDS)]}</action>"}}]})


async def serve(reader, writer):
    # HTTP/1.1 with keep-alive, every request answered after 100 ms on one event loop: as a
    # batching inference server, it takes any number of requests at once
    while True:
        head = await reader.readuntil(CRLF + CRLF)
        length = 0
        for line in head.split(CRLF):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length) if length else b""
        payload = reply(json.loads(body)).encode() if head.startswith(b"POST") else b""
        if payload:
            await asyncio.sleep(0.1)
        writer.write(b"HTTP/1.1 200 OK" + CRLF + b"Content-Type: application/json" + CRLF
                     + b"Content-Length: " + str(len(payload)).encode() + CRLF + CRLF + payload)
        await writer.drain()


async def guarded(reader, writer):
    try:
        await serve(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(port):
    server = await asyncio.start_server(guarded, "127.0.0.1", port, backlog=512)
    await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url)
            return proc, f"{url}/v1"
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the chat server did not start")


def turns_per_second(url: str, concurrency: int, episodes: int, max_turns: int) -> float:
    """Turns/s with one env per request in flight, in worker processes (TextWorld's ~4 ms
    per turn would otherwise share one core under the GIL)."""
    kwargs = {"preset": "easy", "max_turns": max_turns}
    policy = agentgym.OpenAIChatPolicy(base_url=url, concurrency=concurrency, timeout=120)
    with EnvPool("TextWorld-v0", n=concurrency, env_kwargs=kwargs) as pool:
        for env in range(len(pool)):  # started before the clock runs
            pool.call(env, "reset", seed=env)
        started = time.perf_counter()
        played = agentgym.rollout(pool, policy, tasks=episodes, progress=False)
        seconds = time.perf_counter() - started
    policy.close()
    failed = [e.error for e in played if e.error]
    if failed:
        raise RuntimeError(f"{len(failed)} episodes failed, e.g. {failed[0]}")
    return sum(e.num_turns for e in played) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--serial-episodes", type=int, default=32,
                        help="episodes at concurrency 1 (its rate is steady; 256 take minutes)")
    args = parser.parse_args()
    console = Console()
    with agentgym.make("TextWorld-v0", preset="easy") as env:  # games made before timing
        for seed in track(range(args.episodes), description="games", console=console):
            env.reset(seed=seed)
    proc, url = start_server()
    try:
        rows = []
        for concurrency in (1, 8, 32, 64):
            episodes = args.serial_episodes if concurrency == 1 else args.episodes
            with console.status(f"concurrency {concurrency}: {episodes} episodes"):
                rate = turns_per_second(url, concurrency, episodes, args.max_turns)
            rows.append((concurrency, episodes, rate))
    finally:
        proc.terminate()
        proc.wait()
    table = Table(title="TextWorld rollouts through a 100 ms chat server")
    for column in ("concurrency", "episodes", "turns/s", "vs concurrency 1"):
        table.add_column(column, justify="right")
    for concurrency, episodes, rate in rows:
        table.add_row(str(concurrency), str(episodes), f"{rate:.1f}", f"{rate / rows[0][2]:.1f}x")
    console.print(table)
    best = rows[-1][2] / rows[0][2]
    console.print(f"Concurrency 64: {best:.1f}x concurrency 1 (target 30x): "
                  + ("met" if best >= 30 else "NOT met"))


if __name__ == "__main__":
    main()
