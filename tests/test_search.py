import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from environments.retrieval import RemoteRetriever
from environments.search.metrics import exact_match, normalize_answer, token_f1
from tests.conftest import play


@pytest.fixture(scope="module")
def env():
    env = agentgym.make("Search-v0")
    yield env
    env.close()


def expert(info):
    return info["expert_action"]


def test_check_env(env):
    check_env(env)


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_expert_answers_every_hop_count(hops):
    with agentgym.make("Search-v0", hops=hops) as env:
        for seed in range(6):
            reward, info = play(env, expert, seed)
            assert info["outcome_channels"] == {"em": 1.0, "f1": 1.0, "success": 1.0}
            assert reward == 1.0 and env.turn == hops + 1


def test_answering_immediately_scores_far_lower(env):
    guess = lambda info: "<answer>1850</answer>"  # noqa: E731
    scores = [play(env, guess, seed)[1]["outcome_channels"]["em"] for seed in range(40)]
    assert sum(scores) / len(scores) <= 0.1


def test_test_split_asks_about_other_entities(env):
    train = {env.reset(seed=s)[1]["instruction"] for s in range(30)}
    test = {env.reset(seed=s, options={"split": "test"})[1]["instruction"] for s in range(30)}
    assert not train & test


def test_channels_and_state_key(env):
    obs, info = env.reset(seed=5)  # a 2-hop question
    start = info["state_key"]
    _, _, _, _, first = env.step(info["expert_action"])
    assert first["reward_channels"]["new_evidence"] == 1.0
    assert first["state_key"] != start
    _, _, _, _, second = env.step(first["expert_action"])
    assert second["reward_channels"]["retrieval_hit"] == 1.0  # the answer is now in view
    _, _, _, _, again = env.step(first["expert_action"])     # the same search twice
    assert again["reward_channels"]["new_evidence"] == 0.0
    assert again["state_key"] == second["state_key"]         # same documents, same state


def test_em_f1_normalisation():
    assert normalize_answer("  The Draga  Press! ") == "draga press"
    assert exact_match("an Apple.", ["apple"]) == 1.0
    assert exact_match("Veelgard", ["Veelgard, Ostmark", "veelgard"]) == 1.0
    assert exact_match("1821", ["1820"]) == 0.0
    assert token_f1("the red house", ["red big house"]) == pytest.approx(0.8)
    assert token_f1("red house", ["blue car", "red house now"]) == pytest.approx(0.8)
    assert token_f1("", ["x"]) == 0.0


def test_em_matches_search_r1_on_plain_string_golds_and_control_whitespace(env):
    # Search-R1's em_check wraps a plain-string gold instead of iterating its characters
    assert exact_match("São Paulo", "São Paulo") == 1.0
    assert token_f1("São Paulo", "São Paulo") == 1.0
    # \r, \v and \f in an answer separate words, as str.split treats them
    for sep in "\r\v\f\x1c":
        parsed = env.protocol.parse(f"<answer>São{sep}Paulo</answer>")
        assert exact_match(parsed.value.arguments["text"], "São Paulo") == 1.0, repr(sep)


def test_format_aware_outcome():
    with agentgym.make("Search-v0", reward="format_em", hops=1) as env:
        assert play(env, expert, 0)[0] == 1.0                     # correct, valid
        obs, info = env.reset(seed=0)
        env.step("oops")                                          # an invalid action
        *_, info = env.step(info["expert_action"])
        *_, info = env.step(info["expert_action"])
        assert info["outcome_channels"]["format_em"] == pytest.approx(0.8)   # 1 - lambda_s
        reward, info = play(env, lambda i: "<answer>nobody</answer>", 0)
        assert reward == pytest.approx(0.2)                       # wrong, valid, not retrieved
        obs, info = env.reset(seed=0)
        *_, info = env.step(info["expert_action"])                # the gold is now in view
        *_, info = env.step("<answer>nobody</answer>")
        assert info["outcome_channels"]["format_em"] == pytest.approx(0.3)


BAD = {
    "<search></search>": "empty",
    "<search>founder of x": "not closed",
    "<search>a</search><answer>b</answer>": "found 2 actions",
    "<search>" + "q" * 1_048_576 + "</search>": "the limit is",
    "just words": "no <search> or <answer>",
}


def test_bad_actions_answer_clearly(env):
    obs, info = env.reset(seed=1)
    for action, problem in BAD.items():
        obs, reward, terminated, truncated, info = env.step(action)
        assert problem in obs and "Let me try again" in obs
        assert not info["action_valid"] and not terminated
    assert not truncated
    _, info = env.reset(seed=1)
    assert play(env, expert, 1)[1]["success"]


def test_real_data_files(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": "0", "contents": '"Ada Lovelace"\nAda Lovelace wrote the first program.'},
            {"id": "1", "contents": '"Charles Babbage"\nBabbage designed the Analytical Engine.'}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "Who designed the Analytical Engine?",
                              "golden_answers": ["Charles Babbage", "Babbage"]}) + "\n")
    with agentgym.make("Search-v0", corpus=corpus, qa={"train": qa, "test": qa},
                       cache_dir=tmp_path / "cache") as env:
        obs, info = env.reset(seed=0)
        assert "Analytical Engine" in obs
        obs, *_, info = env.step("<search>Analytical Engine designer</search>")
        assert "Doc 1(Title: Charles Babbage)" in obs
        assert info["reward_channels"] == {"format": 1.0, "retrieval_hit": 1.0,
                                           "new_evidence": 1.0}
        *_, info = env.step("<answer>babbage</answer>")
        assert info["success"]


# ------------------------------------------------------------------ the shared server
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve-retriever",
                             "--port", str(port)], env=os.environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"retriever server did not start: {proc.stdout.read()}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


QUERIES = ["Kabel Institute", "founder of the Draga Press", "population", "born 1789 composer",
           "zzzz nothing matches", "the"]


def test_server_and_in_process_agree(env, server):
    client = RemoteRetriever(server)
    assert client.search_many(QUERIES, 3) == env.retriever.search_many(QUERIES, 3)
    with agentgym.make("Search-v0", retriever_url=server) as remote:
        local_t = [play(env, expert, s) for s in range(4)]
        remote_t = [play(remote, expert, s) for s in range(4)]
    assert [r[1]["outcome_channels"] for r in local_t] == [
        r[1]["outcome_channels"] for r in remote_t]
    client.close()


def test_the_env_refuses_a_retriever_of_another_knowledge_base(env, server):
    health = httpx.get(f"{server}/health").json()
    assert health["fingerprint"] == env.unwrapped.kb_fingerprint and health["passages"] == 2000
    with pytest.raises(agentgym.InvalidOptionError, match=r"serves a knowledge base with "
                       r"fingerprint '[0-9a-f]{16}'; this env's \(kb500-seed0\) is"):
        agentgym.make("Search-v0", kb_size=500, retriever_url=server)
    with pytest.raises(agentgym.InvalidOptionError, match=r"Cannot reach the retriever at "
                       r"http://127.0.0.1:9"):
        agentgym.make("Search-v0", retriever_url="http://127.0.0.1:9")


def test_server_survives_concurrent_and_vanishing_clients(env, server):
    expected = env.retriever.search_many(QUERIES, 3)
    errors = []

    def worker():
        client = RemoteRetriever(server)
        for _ in range(10):
            if client.search_many(QUERIES, 3) != expected:
                errors.append("mismatch")
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in range(5):  # clients that hang up halfway through a request
        with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as s:
            s.sendall(b'POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                      b'Content-Length: 500\r\n\r\n{"queries": ["Kab')
    for t in threads:
        t.join()
    assert errors == []
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    bad = httpx.post(f"{server}/search", json={"queries": "not a list"})
    assert bad.status_code == 422


@pytest.mark.parametrize("kind", ["dense", "hybrid"])
def test_dense_and_hybrid_retrievers_find_the_supporting_passages(kind, tmp_path):
    with agentgym.make("Search-v0", kb_size=200, hops=2, retriever=kind,
                       cache_dir=tmp_path) as env:
        wins = [play(env, expert, seed)[1]["success"] for seed in range(3)]
        obs, info = env.reset(seed=0)
        first = env.retriever.search_many(["Kabel Institute founder"], 3)
        again = env.retriever.search_many(["Kabel Institute founder"], 3)
    assert all(wins)
    assert first == again and len(first[0]) == 3
