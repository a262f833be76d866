"""Native tool calling: tools as schemas, structured calls, results as ``role: "tool"``.

Every family is played by the expert as a tool-calling model would play it (structured
calls, not text) and must win exactly as the text expert does; a reply with several calls
runs them in order; an OpenAI-compatible server gets ``tools=`` and its ``tool_calls`` are
executed; the recorded episode rebuilds exactly the chat the policy was shown.
"""

from __future__ import annotations

import json
import re

import pytest

import agentgym
from agentgym.chat import episode_messages
from agentgym.hf_policy import TransformersPolicy
from agentgym.policies import Conversation, Reply
from agentgym.protocols import ToolCall, tool_calls_in
from agentgym.records import Episode
from agentgym.tool_text import read_tool_calls
from tests.test_rollout import ChatServer
from tests.test_viewer import replay
from trainers.models import tiny_model
from trainers.tiny import train_tokenizer
from trainers.tokenize import tokenize_episode

FAMILIES = {
    "TextWorld-v0": {"preset": "easy", "protocol": "tools"},
    "ALFWorld-v0": {"source": "generated", "protocol": "tools"},
    "Search-v0": {"kb_size": 300, "protocol": "tools"},
    "WebShop-v0": {"catalog_size": 200, "protocol": "tools"},
    "SWE-v0": {"sandbox": "local", "allow_unsandboxed": True, "tasks_per_source": 1},
}


class Recording:
    """Wraps a policy and keeps every conversation it was shown."""

    def __init__(self, policy):
        self.policy, self.shown = policy, []
        self.native_tools = getattr(policy, "native_tools", False)

    def __call__(self, conversation: Conversation):
        self.shown.append([dict(m) for m in conversation.messages])
        return self.policy(conversation)


@pytest.mark.parametrize("env_id", list(FAMILIES))
def test_every_family_is_won_with_native_tool_calls(env_id):
    with agentgym.make(env_id, **FAMILIES[env_id]) as env:
        assert env.unwrapped.protocol.schemas(), "a tool protocol offers its schemas"
        native = Recording(agentgym.ExpertPolicy(native_tools=True))
        episodes = agentgym.rollout(env, native, tasks=2, seed=3, progress=False)
        text = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=2, seed=3, progress=False)
    for ours, theirs in zip(episodes, text, strict=True):
        assert ours.error is None and ours.outcome.success and theirs.outcome.success
        assert [t.observation for t in ours.turns] == [t.observation for t in theirs.turns]
        assert [t.reward for t in ours.turns] == [t.reward for t in theirs.turns]
        assert ours.tools == env.unwrapped.protocol.schemas() and theirs.tools is None
        for turn in ours.turns:
            assert turn.tool_call_id == f"call_{turn.index}_0"
            assert [c["id"] for c in turn.tool_calls] == [turn.tool_call_id]
            assert turn.action_valid and turn.parsed_action
    # each result went back as a tool message answering its call, and the record rebuilds
    # exactly the chat the policy saw
    last = native.shown[-1]
    assert [m["role"] for m in last[2:]] == ["assistant", "tool"] * (len(last[2:]) // 2)
    assert all(m["tool_call_id"] == a["tool_calls"][0]["id"]
               for a, m in zip(last[2::2], last[3::2], strict=True))
    assert episode_messages(episodes[-1])[:len(last)] == last


def two_moves_at_once(conversation: Conversation) -> Reply:
    """The expert's next move twice in one reply (the second may no longer be right)."""
    call = tool_calls_in(conversation.info["expert_action"])[0]
    return Reply(text="two moves", tool_calls=[call, call])


two_moves_at_once.native_tools = True


def test_several_calls_in_one_reply_run_in_order():
    with agentgym.make("TextWorld-v0", preset="easy", protocol="tools", max_turns=6) as env:
        recording = Recording(two_moves_at_once)
        episode = agentgym.rollout(env, recording, tasks=1, seed=0, progress=False)[0]
    turns = episode.turns
    assert len(turns) >= 2
    assert turns[0].tool_calls is not None and len(turns[0].tool_calls) == 2
    assert turns[1].tool_calls is None  # the second call of the same reply
    assert [turns[0].tool_call_id, turns[1].tool_call_id] == ["call_0_0", "call_0_1"]
    assert turns[1].policy_seconds == 0.0
    second = recording.shown[1]
    assert [m["role"] for m in second[2:]] == ["assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in second[3:]] == ["call_0_0", "call_0_1"]
    assert second[3]["content"] == turns[1].observation  # the first call's result
    assert episode_messages(episode)[:len(second)] == second
    if len(turns) > 2:  # the next reply starts after both results
        assert turns[2].tool_calls is not None and turns[2].tool_call_id == "call_2_0"


def test_an_openai_server_gets_tools_and_its_tool_calls_run(tmp_path):
    def answer(body):
        call = {"id": f"srv-{len(body['messages'])}", "type": "function",
                "function": {"name": "act", "arguments": json.dumps({"command": "look"})}}
        return 200, {"role": "assistant", "content": None, "tool_calls": [call]}

    out = tmp_path / "eps.jsonl"
    with ChatServer(answer) as server, \
            agentgym.make("TextWorld-v0", preset="easy", protocol="tools", max_turns=3) as env:
        policy = agentgym.OpenAIChatPolicy(base_url=server.url, native_tools=True)
        episode = agentgym.rollout(env, policy, tasks=1, out=out, progress=False)[0]
        bodies = [body for _, body in server.requests]
    assert bodies[0]["tools"] == env.unwrapped.protocol.schemas()
    assert [t.parsed_action for t in episode.turns] == ["look"] * 3  # act(command) runs it
    assert [t.tool_call_id for t in episode.turns] == ["srv-2", "srv-4", "srv-6"]
    # the wire format: arguments as JSON text, results as tool messages with the call's id
    second = bodies[1]["messages"]
    assert json.loads(second[2]["tool_calls"][0]["function"]["arguments"]) == {
        "command": "look"}
    assert second[3] == {"role": "tool", "tool_call_id": "srv-2",
                         "content": episode.turns[1].observation}
    again = agentgym.read_episodes(out)[0]
    assert again.turns[0].tool_calls == [{"id": "srv-2", "name": "act",
                                          "arguments": {"command": "look"}}]
    shown = replay(str(out), "--print", "--episode", "0").stdout
    assert "tool call act (id srv-2)" in shown and "tool call act (id srv-6)" in shown


def test_a_malformed_server_call_is_answered_as_an_observation():
    bad = {"id": "c1", "type": "function", "function": {"name": "act", "arguments": "{oops"}}
    with ChatServer(lambda body: (200, {"role": "assistant", "content": "",
                                        "tool_calls": [bad]})) as server, \
            agentgym.make("TextWorld-v0", preset="easy", protocol="tools", max_turns=2) as env:
        policy = agentgym.OpenAIChatPolicy(base_url=server.url, native_tools=True)
        episode = agentgym.rollout(env, policy, tasks=1, progress=False)[0]
    assert episode.error is None and not episode.turns[0].action_valid
    assert "not valid JSON" in episode.turns[1].observation
    assert episode.turns[0].tool_call_id is None  # answered as user text: no call to answer


def test_tool_call_records_are_checked_when_read():
    turn = {"index": 0, "observation": "o", "action": "", "tool_calls": [{"name": "act"}]}
    with pytest.raises(agentgym.errors.RecordError, match="tool call needs"):
        Episode.from_dict({"env_id": "x", "task_id": "t", "schema_version": 3,
                           "turns": [turn]})


def test_text_mode_conversations_are_unchanged():
    with agentgym.make("TextWorld-v0", preset="easy", protocol="tools") as env:
        recording = Recording(agentgym.ExpertPolicy())
        episode = agentgym.rollout(env, recording, tasks=1, progress=False)[0]
    assert episode.tools is None and all(t.tool_call_id is None for t in episode.turns)
    assert {m["role"] for m in recording.shown[-1]} == {"system", "user", "assistant"}
    assert ToolCall("act", {"command": "look"}) == ToolCall("act", {"command": "look"}, id="x")


# ------------------------------------------------------------------ tokenisation with tools
CALL_TEXT = {  # how each format's model writes one call (what its template renders)
    "hermes": lambda c: "<tool_call>\n" + json.dumps({"name": c.name, "arguments": c.arguments})
    + "\n</tool_call>",
    "llama3": lambda c: json.dumps({"name": c.name, "parameters": c.arguments}),
}


class CharSampler:
    """Writes the expert's call as a ``chat_format`` model would, one token per character
    where the vocabulary has it (never how the tokenizer would encode the same text)."""

    native_tools = True

    def __init__(self, tokenizer, chat_format):
        self.tokenizer, self.chat_format = tokenizer, chat_format

    def __call__(self, conversation):
        call = tool_calls_in(conversation.info["expert_action"])[0]
        text = CALL_TEXT[self.chat_format](call)
        ids = self.char_ids(text) + [self.tokenizer.eos_token_id]
        return Reply(tool_calls=[call], token_ids=ids, logprobs=[-0.5] * len(ids))

    def char_ids(self, text):
        ids = []
        for part in re.split(r"(<tool_call>|</tool_call>)", text):
            if part in ("<tool_call>", "</tool_call>"):
                ids.append(self.tokenizer.convert_tokens_to_ids(part))
            else:
                ids += [i for ch in part for i in self.tokenizer(ch, add_special_tokens=False)
                        ["input_ids"]]
        return ids


@pytest.fixture(scope="module")
def tool_world():
    env = agentgym.make("TextWorld-v0", preset="easy", protocol="tools", max_turns=5)
    experts = agentgym.rollout(env, agentgym.ExpertPolicy(native_tools=True), tasks=3,
                               progress=False)
    texts = [env.system_prompt()] + [t.observation for e in experts for t in e.turns]
    yield env, texts * 3
    env.close()


@pytest.mark.parametrize("chat_format", ["hermes", "llama3"])
def test_tool_call_turns_train_on_the_sampled_ids(tool_world, chat_format):
    env, texts = tool_world
    tokenizer = train_tokenizer(texts, 500, chat_format)
    sampler = CharSampler(tokenizer, chat_format)
    episode = agentgym.rollout(env, sampler, tasks=1, seed=1, progress=False)[0]
    assert episode.outcome.success and episode.tools
    advantages = [float(i + 1) for i in range(episode.num_turns)]
    row = tokenize_episode(episode, tokenizer, advantages)[0]
    for turn in episode.turns:
        trained = [i for i, t in zip(row.input_ids, row.turn_ids, strict=True) if t == turn.index]
        assert trained == turn.token_ids  # exactly the sampled ids (the sampler emitted eos)
        text = CALL_TEXT[chat_format](ToolCall(turn.tool_calls[0]["name"],
                                               turn.tool_calls[0]["arguments"]))
        assert trained[:-1] != tokenizer(text, add_special_tokens=False)["input_ids"]
        assert {a for a, t in zip(row.advantages, row.turn_ids, strict=True)
                if t == turn.index} == {advantages[turn.index]}
    # the template renders what was sampled: the row decodes to the templated chat
    rendered = tokenizer.apply_chat_template(episode_messages(episode), tools=episode.tools,
                                             tokenize=False)
    assert tokenizer.decode(row.input_ids) == rendered
    # tool results and tool schemas are the env's and the template's: never trained on
    masked_in = tokenizer.decode([i for i, m in zip(row.input_ids, row.loss_mask,
                                                    strict=True) if m])
    assert episode.turns[1].observation not in masked_in and '"description"' not in masked_in


def test_a_reply_with_two_calls_is_one_piece_with_their_mean_advantage(tool_world):
    env, texts = tool_world
    tokenizer = train_tokenizer(texts, 500, "hermes")
    episode = agentgym.rollout(env, two_moves_at_once, tasks=1, progress=False)[0]
    advantages = [float(i) for i in range(episode.num_turns)]
    row = tokenize_episode(episode, tokenizer, advantages)[0]
    first = {a for a, t in zip(row.advantages, row.turn_ids, strict=True) if t == 0}
    assert first == {0.5} and 1 not in row.turn_ids  # turns 0 and 1: one reply
    assert tokenizer.decode(row.input_ids) == tokenizer.apply_chat_template(
        episode_messages(episode), tools=episode.tools, tokenize=False)


def test_tool_calls_are_read_from_text_as_servers_read_them():
    two = ('thinking <tool_call>\n{"name": "act", "arguments": {"command": "look"}}\n'
           '</tool_call>\n<tool_call>{"name": "act", "arguments": {"command": "go east"}}'
           "</tool_call>")
    content, calls = read_tool_calls(two, "hermes")
    assert content == "thinking" and [c.arguments["command"] for c in calls] == ["look",
                                                                                 "go east"]
    broken = '<tool_call>{"name": "act", "arguments": {"command": </tool_call>'
    assert read_tool_calls(broken, "hermes") == (broken, [])
    content, calls = read_tool_calls('<|python_tag|>{"name": "act", "parameters": '
                                     '{"command": "look"}}', "llama3")
    assert calls == [ToolCall("act", {"command": "look"})] and content == ""
    assert read_tool_calls("go east", "llama3") == ("go east", [])
    with pytest.raises(agentgym.errors.InvalidOptionError, match="hermes"):
        read_tool_calls("x", "mistral")


def test_a_local_model_gets_the_tools_in_its_prompt(tool_world):
    env, texts = tool_world
    tokenizer = train_tokenizer(texts, 500, "hermes")
    model = tiny_model(tokenizer, hidden=32, layers=1, heads=2, kv_heads=1)
    policy = TransformersPolicy(model, tokenizer, max_new_tokens=4, tool_parser="hermes")
    obs, info = env.reset(seed=0)
    conversation = Conversation([{"role": "user", "content": obs}], info, env.protocol.encode)
    assert "<tools>" in policy.prompts(tokenizer, [conversation])[0]
    plain = TransformersPolicy(model, tokenizer, max_new_tokens=4)
    assert "<tools>" not in plain.prompts(tokenizer, [conversation])[0]
    reply = policy.reply('<tool_call>{"name": "act", "arguments": {"command": "look"}}'
                         "</tool_call>", [1, 2], [-0.1, -0.2])
    assert reply.tool_calls == [ToolCall("act", {"command": "look"})] and reply.token_ids == [1, 2]


@pytest.mark.parametrize("chat_format", ["chatml", "hermes", "llama3"])
def test_a_saved_tiny_model_folder_reloads_the_same_tokenizer(tool_world, tmp_path,
                                                              chat_format):
    # beside a Qwen2 config.json, AutoTokenizer loads a Qwen2Tokenizer (as vLLM does): its
    # word splitting must be the one the tokenizer was trained and used with
    from transformers import AutoTokenizer

    env, texts = tool_world
    numbers = ["error at line 12345, exit code 67890"] * 20  # merges Qwen's split forbids
    tokenizer = train_tokenizer(texts + numbers, 500, chat_format)
    tiny_model(tokenizer, hidden=32, layers=1, heads=2, kv_heads=1).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    episode = agentgym.rollout(env, agentgym.ExpertPolicy(native_tools=True), tasks=1,
                               progress=False)[0]
    text = tokenizer.apply_chat_template(episode_messages(episode), tools=episode.tools,
                                         tokenize=False) + " naïve 12345  it's\r\n\t"
    assert again.apply_chat_template(episode_messages(episode), tools=episode.tools,
                                     tokenize=False) == text[:-len(" naïve 12345  it's\r\n\t")]
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
