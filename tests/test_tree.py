"""Tree-structured groups: shared prefixes stepped once, leaves as ordinary episodes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import agentgym
from agentgym.errors import InvalidOptionError
from agentgym.rollout import tree_rollout
from agentgym.tree import Tree
from tests.test_vine import Corridor
from trainers import GRPO, SALT, Batch, PrefixMatch


def counting(env):
    """``env`` with its ``step`` calls counted in ``env.steps_taken``."""
    step, env.steps_taken = env.step, 0

    def counted(action):
        env.steps_taken += 1
        return step(action)

    env.step = counted
    return env


def shares_prefix(leaf, parent, turns):
    return [(t.observation, t.action, t.state_key, t.reward) for t in leaf.turns[:turns]] == \
        [(t.observation, t.action, t.state_key, t.reward) for t in parent.turns[:turns]]


@pytest.mark.parametrize("tree", [Tree(leaves=8, width=2, at=(0, 1, 2)),
                                  Tree(leaves=6, width=3, every=2)])
def test_shared_prefixes_are_stepped_once(tree):
    env = counting(agentgym.make("TextWorld-v0", preset="medium", max_turns=8))
    episodes, stats = tree_rollout(env, agentgym.RandomPolicy(0), tree, tasks=2, seed=3)
    assert sorted(Counter(e.group_id for e in episodes).values()) == [tree.leaves] * 2
    by_id = {e.episode_id: e for e in episodes}
    shared = 0
    for leaf in episodes:
        link = leaf.metadata["tree"]
        if link["parent"] is not None:
            parent = by_id[link["parent"]]
            assert parent.group_id == leaf.group_id
            assert shares_prefix(leaf, parent, link["branch_turn"])
            shared += link["branch_turn"]
    # every step of every leaf was stepped once, except the prefixes it shares
    assert env.steps_taken == stats.env_steps == stats.leaf_steps - shared
    assert shared > 0 and stats.steps_saved == pytest.approx(shared / stats.leaf_steps)
    assert len({e.episode_id for e in episodes}) == len(episodes)


def test_leaves_are_episodes_that_replay_from_the_jsonl(tmp_path):
    env = agentgym.make("TextWorld-v0", preset="medium", max_turns=6)
    episodes, _ = tree_rollout(env, agentgym.RandomPolicy(1), Tree(leaves=4, at=(1, 3)),
                               seed=5)
    agentgym.write_episodes(tmp_path / "tree.jsonl", episodes)
    fresh = agentgym.make("TextWorld-v0", preset="medium", max_turns=6)
    for leaf in agentgym.read_episodes(tmp_path / "tree.jsonl"):
        observation, _ = fresh.reset(seed=leaf.seed, options={"task_id": leaf.task_id})
        for turn in leaf.turns:
            assert turn.observation == observation
            observation, reward, *_ = fresh.step(turn.action)
            assert reward == turn.reward
        assert observation == leaf.final_observation and "tree" in leaf.metadata


def test_salt_on_a_tree_gives_a_shared_prefix_the_mean_of_its_leaves():
    """Matched on whole histories, SALT's graph is the tree: the advantage of a step on a
    shared prefix is the mean of the GRPO advantages of the leaves below it."""
    episodes, _ = tree_rollout(Corridor(), agentgym.RandomPolicy(2),
                               Tree(leaves=8, width=2, at=(0, 1, 2)), tasks=3)
    batch = Batch.from_episodes(episodes)
    salt = SALT(base=GRPO(), matcher=PrefixMatch())(batch)
    grpo = [a[0] for a in GRPO()(batch)]
    checked = 0
    for members in batch.groups:
        for i in members:
            for t in range(len(batch.episodes[i].turns)):
                below = [j for j in members
                         if shares_prefix(batch.episodes[j], batch.episodes[i], t + 1)]
                assert salt[i][t] == pytest.approx(np.mean([grpo[j] for j in below]))
                checked += len(below) > 1
    assert checked > 20


def test_a_tree_must_say_where_it_branches():
    with pytest.raises(InvalidOptionError, match="every=k turns, at=.turns. or uncertain"):
        Tree(leaves=4)
    with pytest.raises(InvalidOptionError, match="width >= 2"):
        Tree(leaves=4, width=1, every=1)


def test_rollout_samples_tree_groups(tmp_path):
    out = tmp_path / "tree.jsonl"
    episodes = agentgym.rollout("TextWorld-v0", agentgym.RandomPolicy(0), tasks=2,
                                tree=Tree(leaves=4, at=(1, 2)), env_kwargs={"preset": "easy"},
                                seed=4, out=out, progress=False)
    assert len(episodes) == 8 and len({e.group_id for e in episodes}) == 2
    assert [e.episode_id for e in agentgym.read_episodes(out)] == [
        e.episode_id for e in episodes]
    with pytest.raises(InvalidOptionError, match="group size is tree.leaves"):
        agentgym.rollout("TextWorld-v0", agentgym.RandomPolicy(0), group_size=3,
                         tree=Tree(leaves=4, every=1), progress=False)


def test_trees_grow_in_a_pools_workers_with_the_same_result_as_in_process():
    """Each tree is played in one worker of the pool (its snapshots restored there); trees
    of different tasks grow side by side, and each leaf is what it is in process."""
    from agentgym.pool import EnvPool

    tree, kwargs = Tree(leaves=4, at=(1, 2)), {"preset": "medium", "max_turns": 6}
    with EnvPool("TextWorld-v0", n=2, env_kwargs=kwargs) as pool:
        pooled = agentgym.rollout(pool, agentgym.RandomPolicy(0), tasks=3, seed=2, tree=tree,
                                  progress=False)
    local = agentgym.rollout(agentgym.make("TextWorld-v0", **kwargs),
                             agentgym.RandomPolicy(0), tasks=3, seed=2, tree=tree,
                             progress=False)

    def path(e):
        return [(t.action, t.observation, t.reward) for t in e.turns], e.final_observation

    assert [path(e) for e in pooled] == [path(e) for e in local]
    assert agentgym.TreeStats.of(pooled).steps_saved > 0


class Unsure:
    """A random admissible action each turn, reported as a sure reply except at turn 2."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def __call__(self, conversation):
        from agentgym.policies import Reply

        actions = conversation.info["admissible_actions"]
        action = actions[int(self.rng.integers(len(actions)))]
        surprisal = 5.0 if conversation.turn == 2 else 0.1
        return Reply(text=conversation.encode(action), logprobs=[-surprisal] * 3)


def test_uncertain_trees_branch_first_where_the_policy_was_least_sure():
    env = counting(agentgym.make("TextWorld-v0", preset="medium", max_turns=6))
    episodes = agentgym.rollout(env, Unsure(0), tree=Tree(leaves=4, width=2, uncertain=True),
                                seed=1, progress=False)
    first, *others = episodes
    links = [(e.metadata["tree"]["parent"], e.metadata["tree"]["branch_turn"]) for e in others]
    assert first.metadata["tree"]["parent"] is None and len(episodes) == 4
    assert links[0] == (first.episode_id, 2)  # the unsure state is branched first
    assert len(set(links)) == len(links)  # a state splits into width (2) paths at most
    by_id = {e.episode_id: e for e in episodes}
    for leaf, (parent, turn) in zip(others, links):
        assert shares_prefix(leaf, by_id[parent], turn)
    assert env.steps_taken == agentgym.TreeStats.of(episodes).env_steps


def test_uncertain_trees_need_a_policy_that_reports_log_probs():
    with pytest.raises(InvalidOptionError, match="RandomPolicy reports none"):
        agentgym.rollout("TextWorld-v0", agentgym.RandomPolicy(0), progress=False,
                         tree=Tree(leaves=2, uncertain=True), env_kwargs={"preset": "easy"})
