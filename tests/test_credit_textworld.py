"""SALT and tokenisation on real TextWorld episodes."""

import pytest

import agentgym
from agentgym.policies import Conversation
from rewards import Outcome
from trainers import GRPO, SALT, Batch, build_graph, tokenize_episode
from trainers.tiny import train_chatml_tokenizer


class ExpertThenRandom:
    """The expert's first ``k`` moves, then uniformly random admissible commands."""

    def __init__(self, k: int, seed: int):
        self.k, self.random = k, agentgym.RandomPolicy(seed)

    def __call__(self, conversation: Conversation) -> str:
        if conversation.turn < self.k:
            return conversation.info["expert_action"]
        return self.random(conversation)


@pytest.fixture(scope="module")
def mixed_group():
    """One medium task: 3 expert episodes and 5 that follow the expert for 2 moves."""
    env = agentgym.make("TextWorld-v0", preset="medium", max_turns=8)
    policies = [agentgym.ExpertPolicy()] * 3 + [ExpertThenRandom(2, s) for s in range(5)]
    episodes = [agentgym.run_episode(env, p, seed=0, group_id="g") for p in policies]
    env.close()
    return episodes


def test_salt_zeroes_shared_prefixes_and_keeps_decisive_steps(mixed_group):
    wins = [e.outcome.success for e in mixed_group]
    assert any(wins) and not all(wins)
    batch = Batch.from_episodes(mixed_group, rewards=Outcome("success"))
    base, salt = GRPO()(batch), SALT()(batch)
    graph = build_graph(mixed_group)
    # the first two moves are the same for all eight: found, merged and neutral
    for t in (0, 1):
        assert {graph.shared(i, t) for i in range(8)} == {8}
        assert all(abs(a[t]) < 1e-9 for a in salt)
    # a divergent step taken only by episodes of one outcome keeps that outcome's sign
    decisive = 0
    for i, episode in enumerate(mixed_group):
        for t in range(2, episode.num_turns):
            edge = graph.edges[graph.step_edges[i][t]]
            if len({wins[j] for j in edge.trajectories()}) == 1:
                assert (salt[i][t] > 0) == wins[i]
                assert abs(salt[i][t]) > 0.5
                decisive += 1
    assert decisive >= 4
    # the winning move itself is taken only by winners: it keeps the full trajectory credit
    last = mixed_group[0].num_turns - 1
    assert abs(salt[0][last] - base[0][last]) < 1e-9 and base[0][last] > 0


@pytest.fixture(scope="module")
def tokenizer(mixed_group):
    texts = [t.observation + " " + t.action for e in mixed_group for t in e.turns]
    return train_chatml_tokenizer(texts * 3 + [mixed_group[0].system_prompt], vocab_size=600)


def masked_text_per_turn(row, tokenizer, skip_special=True):
    turns = sorted({t for t in row.turn_ids if t >= 0})
    return [tokenizer.decode([i for i, m, tt in zip(row.input_ids, row.loss_mask, row.turn_ids)
                              if m and tt == t], skip_special_tokens=skip_special)
            for t in turns]


def test_concatenated_mask_decodes_to_exactly_the_assistant_texts(mixed_group, tokenizer):
    episode = mixed_group[-1]
    advantages = [float(i) for i in range(episode.num_turns)]
    (row,) = tokenize_episode(episode, tokenizer, advantages)
    actions = [t.action for t in episode.turns]
    assert masked_text_per_turn(row, tokenizer) == actions
    assert masked_text_per_turn(row, tokenizer, False) == [a + "<|im_end|>" for a in actions]
    assert len(row.input_ids) == len(row.loss_mask) == len(row.advantages)
    for token_adv, mask, turn in zip(row.advantages, row.loss_mask, row.turn_ids):
        assert token_adv == (advantages[turn] if mask else 0.0)
    everything = tokenizer.decode(row.input_ids, skip_special_tokens=False)
    assert everything == tokenizer.apply_chat_template(
        __import__("agentgym.chat", fromlist=["x"]).episode_messages(episode), tokenize=False)
    env_text = tokenizer.decode([i for i, m in zip(row.input_ids, row.loss_mask) if not m])
    assert episode.turns[1].observation in env_text


def test_per_turn_rows(mixed_group, tokenizer):
    episode = mixed_group[0]
    rows = tokenize_episode(episode, tokenizer, [1.0] * episode.num_turns, layout="per_turn")
    assert len(rows) == episode.num_turns
    for turn, row in zip(episode.turns, rows):
        assert masked_text_per_turn(row, tokenizer) == [turn.action]
        assert row.loss_mask[-1] == 1 and row.loss_mask[0] == 0
    assert len(rows[-1]) > len(rows[0])  # the history grows


def test_truncation_is_explicit(mixed_group, tokenizer):
    episode = mixed_group[-1]
    (full,) = tokenize_episode(episode, tokenizer)
    with pytest.raises(ValueError, match=f"needs {len(full)} tokens; max_length is 200"):
        tokenize_episode(episode, tokenizer, max_length=200)
    last_turn_end = max(i for i, t in enumerate(full.turn_ids) if t == episode.num_turns - 1)
    (cut,) = tokenize_episode(episode, tokenizer, max_length=last_turn_end,
                              truncation="drop_turns")
    assert cut.dropped_turns == [episode.num_turns - 1]
    kept = masked_text_per_turn(cut, tokenizer)
    assert kept == [t.action for t in episode.turns[:-1]]
    assert cut.loss_mask[-1] == 1  # ends on a whole turn's end-of-turn token
