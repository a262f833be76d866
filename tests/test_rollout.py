import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import agentgym
from agentgym.chat import windowed
from agentgym.policies import Conversation
from agentgym.rollout import sampling_seed


class ChatServer:
    """A real OpenAI-style HTTP server on loopback.

    ``replies`` is a script of ``(status, content)`` replies, or a function of the request
    body returning one. ``delay`` seconds pass before each answer; ``peak`` is the most
    requests that were in flight at once.
    """

    def __init__(self, replies, delay=0.0):
        script = None if callable(replies) else list(replies)
        self.requests = []
        self.in_flight = self.peak = 0
        lock = threading.Lock()
        server = self

        def answer(body):
            if script is None:
                return replies(body)
            return script.pop(0) if script else (200, "<action>look</action>")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    server.requests.append((self.path, body))
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                    status, content = answer(body)
                time.sleep(delay)
                message = (content if isinstance(content, dict)  # a whole message
                           else {"role": "assistant", "content": content})
                payload = (json.dumps({"choices": [{"message": message}]}) if status == 200
                           else "overloaded").encode()
                with lock:
                    server.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_groups_share_an_id_and_sample_with_distinct_seeds(easy_env, tmp_path):
    out = tmp_path / "eps.jsonl"
    episodes = agentgym.rollout(easy_env, agentgym.RandomPolicy(), tasks=3, group_size=4,
                                seed=11, out=out, progress=False)
    assert len(episodes) == 12
    groups = {}
    for ep in episodes:
        groups.setdefault(ep.group_id, []).append(ep)
    assert len(groups) == 3
    for members in groups.values():
        assert len({m.task_id for m in members}) == 1
    assert len({sampling_seed(11, i, g) for i in range(3) for g in range(4)}) == 12
    assert agentgym.read_episodes(out) == episodes
    first = episodes[0]
    assert first.system_prompt.startswith("You are playing a text adventure")
    assert first.turns[0].state_key and first.turns[0].next_state_key
    assert first.turns[1].state_key == first.turns[0].next_state_key
    assert first.metadata["policy"] == "random"


def test_summary_reports_success_and_channels(easy_env):
    episodes = agentgym.rollout(easy_env, agentgym.ExpertPolicy(), tasks=2, progress=False)
    stats = agentgym.summarize(episodes)
    assert stats["success_rate"] == 1.0 and stats["episodes"] == 2
    assert stats["turn/progress"] == 1.0 and stats["outcome/success"] == 1.0
    assert stats["turn/format"] == stats["mean_turns"]


def test_openai_policy_plays_through_a_real_http_server(easy_env):
    _, info = easy_env.reset(seed=0)
    walkthrough = []
    while True:
        walkthrough.append(info["expert_action"])
        *_, terminated, truncated, info = easy_env.step(info["expert_action"])
        if terminated or truncated:
            break
    # first reply: 503 (retried), then the expert's moves
    with ChatServer([(503, None)] + [(200, a) for a in walkthrough]) as server:
        policy = agentgym.OpenAIChatPolicy(base_url=server.url, model="tiny", backoff=0.01)
        episode = agentgym.run_episode(easy_env, policy, seed=0)
        policy.close()
    assert episode.outcome.success and episode.error is None
    path, body = server.requests[-1]
    assert path == "/v1/chat/completions" and body["model"] == "tiny"
    roles = [m["role"] for m in body["messages"]]
    assert roles[:2] == ["system", "user"] and roles[-1] == "user"
    assert episode.metadata["model"] == "tiny"


def test_a_dead_server_is_recorded_not_raised(easy_env):
    policy = agentgym.OpenAIChatPolicy(base_url="http://127.0.0.1:9/v1", retries=1,
                                       backoff=0.01, timeout=2)
    episodes = agentgym.rollout(easy_env, policy, tasks=2, progress=False)
    assert len(episodes) == 2
    for ep in episodes:
        assert ep.error["type"] == "PolicyError"
        assert "failed after 2 attempts" in ep.error["message"]
        assert ep.truncated and not ep.outcome.success


def test_a_policy_bug_is_recorded_with_its_cause(easy_env):
    def broken(conversation):
        raise ZeroDivisionError("oops")

    episode = agentgym.run_episode(easy_env, broken, seed=0)
    assert episode.error == {"type": "PolicyError", "message": "ZeroDivisionError: oops"}


def test_human_policy_reads_plain_commands(easy_env):
    _, info = easy_env.reset(seed=0)
    expert = easy_env.protocol.parse(info["expert_action"]).value
    lines = iter(["/help", expert, "<action>look</action>"] + ["look"] * 50)
    from rich.console import Console

    console = Console(file=open("/dev/null", "w"))
    policy = agentgym.HumanPolicy(input_fn=lambda prompt: next(lines), console=console)
    episode = agentgym.run_episode(easy_env, policy, seed=0)
    assert episode.turns[0].action == f"<action>{expert}</action>"
    assert episode.turns[1].parsed_action == "look"


def test_history_window_keeps_system_opening_and_recent_turns():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "o0"}]
    for i in range(1, 6):
        messages += [{"role": "assistant", "content": f"a{i}"},
                     {"role": "user", "content": f"o{i}"}]
    kept = windowed(messages, 2)
    assert [m["content"] for m in kept] == ["s", "o0", "a4", "o4", "a5", "o5"]
    assert windowed(messages, None) == messages
    assert [m["content"] for m in windowed(messages, 0)] == ["s", "o0"]


def test_policy_sees_the_window(easy_env):
    seen = []

    def spy(conversation: Conversation) -> str:
        seen.append(len(conversation.messages))
        return "<action>look</action>"

    easy_env.max_turns = 5
    agentgym.run_episode(easy_env, spy, seed=0, history_window=1)
    assert seen == [2, 4, 4, 4, 4]


def test_expert_policy_without_expert_is_a_policy_error():
    with pytest.raises(agentgym.PolicyError, match="no expert action"):
        agentgym.ExpertPolicy()(Conversation([], {"expert_action": None}, str))


def test_group_ids_never_collide_across_policies_and_appended_runs(tmp_path):
    """Two policies in one command, the command run twice into one file: 8 distinct groups."""
    out = tmp_path / "runs.jsonl"
    command = [sys.executable, "-m", "agentgym.cli", "rollout", "TextWorld-v0", "--policy",
               "expert", "--policy", "random", "--tasks", "2", "--group", "2", "--env-arg",
               "preset=easy", "--env-arg", "max_turns=8", "--out", str(out)]
    for _ in range(2):
        assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    episodes = agentgym.read_episodes(out)
    runs = {}
    for episode in episodes:
        runs.setdefault(episode.group_id, set()).add(
            (episode.metadata["policy"], episode.metadata["run_id"]))
    assert len(episodes) == 16 and len(runs) == 8
    assert all(len(owners) == 1 for owners in runs.values())
    assert len(set().union(*runs.values())) == 4  # 2 policies x 2 runs
    expert_run = next(e.metadata["run_id"] for e in episodes if e.metadata["policy"] == "expert")

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "agentgym.cli", *args, str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert re.search(r"episodes\s*│\s*8 ", cli("stats", "--policy", "expert"))
    assert re.search(r"success_rate\s*│\s*100.0%", cli("stats", "--policy", "expert"))
    listed = cli("replay", "--print", "--run", expert_run)
    assert len(re.findall(r"^│ \d+ ", listed, re.M)) == 4  # one row per episode
