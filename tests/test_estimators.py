import math

import numpy as np
import pytest

from agentgym.records import Episode, Outcome, Turn
from trainers import (
    GRPO,
    RLOO,
    SALT,
    Batch,
    BatchError,
    DrGRPO,
    GiGPO,
    ObservationMatch,
    PrefixMatch,
    ReinforcePP,
    TurnGAE,
    build_graph,
)
from trainers.estimators import discounted_returns

TOL = 1e-5


def ep(rewards, group="g", keys=None, actions=None, task="t", truncated=False, success=None):
    """An episode with per-turn rewards; keys are the states s_0..s_T."""
    n = len(rewards)
    keys = keys or [f"{group}-s{i}-{id(rewards)}" for i in range(n + 1)]
    actions = actions or [f"a{i}" for i in range(n)]
    turns = [Turn(index=i, observation=f"obs {keys[i]}", action=actions[i],
                  parsed_action=actions[i], reward=float(r), state_key=keys[i],
                  next_state_key=keys[i + 1]) for i, r in enumerate(rewards)]
    won = sum(rewards) > 0 if success is None else success
    return Episode(env_id="Test-v0", task_id=task, group_id=group, turns=turns,
                   final_observation=f"obs {keys[n]}", truncated=truncated,
                   outcome=Outcome(success=won))


def flat(arrays):
    return [float(x) for a in arrays for x in a]


def approx(arrays, expected, tol=TOL):
    got = flat(arrays)
    assert len(got) == len(expected) and all(math.isclose(g, e, abs_tol=tol)
                                             for g, e in zip(got, expected)), got


# ------------------------------------------------------------------ GRPO family
def test_grpo_hand_worked():
    batch = Batch.from_episodes([ep([1]), ep([0]), ep([0]), ep([1])])
    a = 0.5 / math.sqrt(1 / 3)  # (R - 0.5) / sample std
    approx(GRPO()(batch), [a, -a, -a, a])


def test_grpo_multi_turn_broadcasts_the_trajectory_advantage():
    batch = Batch.from_episodes([ep([0, 1]), ep([0, 0, 0])])
    a = 0.5 / math.sqrt(0.5)
    approx(GRPO()(batch), [a, a, -a, -a, -a])


def test_grpo_edge_cases():
    approx(GRPO()(Batch.from_episodes([ep([2.0])])), [2.0])              # group of one: A = R
    approx(GRPO()(Batch.from_episodes([ep([1]), ep([1]), ep([1])])), [0, 0, 0])  # all equal
    two_groups = Batch.from_episodes([ep([1], "x"), ep([0], "x"), ep([5], "y")])
    approx(GRPO()(two_groups), [1 / math.sqrt(0.5) / 2 * 1, -1 / math.sqrt(0.5) / 2, 5.0])


def test_dr_grpo_and_rloo():
    batch = Batch.from_episodes([ep([1]), ep([0]), ep([0]), ep([1])])
    approx(DrGRPO()(batch), [0.5, -0.5, -0.5, 0.5])
    approx(RLOO()(Batch.from_episodes([ep([1]), ep([0]), ep([0])])), [1.0, -0.5, -0.5])
    approx(RLOO()(Batch.from_episodes([ep([3.0])])), [3.0])
    approx(DrGRPO()(Batch.from_episodes([ep([3.0])])), [3.0])


def test_reinforce_pp_batch_whitened():
    batch = Batch.from_episodes([ep([1, 0], "a"), ep([0, 0, 2], "b")])
    # returns [1, 0] and [2, 2, 2]: mean 1.4, std 0.8
    approx(ReinforcePP()(batch), [-0.5, -1.75, 0.75, 0.75, 0.75])
    half = ReinforcePP(gamma=0.5)(batch)
    raw = np.array([1, 0, 0.5, 1, 2])
    approx(half, list((raw - raw.mean()) / np.sqrt(raw.var() + 1e-8)))


def test_reinforce_pp_group_baseline():
    batch = Batch.from_episodes([ep([1, 0]), ep([0, 0, 2])])
    # R - mean_g = [-0.5, 0.5] per turn: [-.5, -.5, .5, .5, .5]; mean 0.1, std sqrt(0.24)
    s = math.sqrt(0.24)
    approx(ReinforcePP(baseline=True)(batch), [-0.6 / s] * 2 + [0.4 / s] * 3)


def test_turn_gae_terminal_truncated_and_discounted():
    done = Batch.from_episodes([ep([0, 0, 1])])
    approx(TurnGAE()(done, [[0.5, 0.6, 0.8]]), [0.5, 0.4, 0.2])
    approx(TurnGAE(gamma=0.5)(done, [[0.5, 0.6, 0.8]]), [-0.25, -0.1, 0.2])
    cut = Batch.from_episodes([ep([0, 0, 1], truncated=True)])
    approx(TurnGAE()(cut, [[0.5, 0.6, 0.8, 0.5]]), [1.0, 0.9, 0.7])     # bootstrap V(s_3)
    approx(TurnGAE(bootstrap_truncated=False)(cut, [[0.5, 0.6, 0.8, 0.5]]), [0.5, 0.4, 0.2])
    with pytest.raises(BatchError, match="needs V\\(s_K\\): give 4 values"):
        TurnGAE()(cut, [[0.5, 0.6, 0.8]])


# ------------------------------------------------------------------ SALT
def salt_group():
    """Four trajectories from s0; a shared first move, then a shared or a distinct path."""
    return [
        ep([0, 1], keys=["s0", "s1", "s2"], actions=["a", "b"]),                # win
        ep([0, 0, 0], keys=["s0", "s1", "s2", "s3"], actions=["a", "b", "c"]),  # lose
        ep([0, 0], keys=["s0", "s1", "s4"], actions=["a", "x"]),                # lose
        ep([0, 1], keys=["s0", "s1", "s5"], actions=["a", "y"]),                # win
    ]


def test_salt_hand_worked():
    episodes = salt_group()
    a = 0.5 / math.sqrt(1 / 3)
    batch = Batch.from_episodes(episodes)
    approx(SALT()(batch), [0, 0,  0, 0, -a,  0, -a,  0, a])
    graph = build_graph(episodes)
    assert graph.shared(0, 0) == 4 and graph.shared(1, 1) == 2 and graph.shared(2, 1) == 1
    assert len(graph.edges) == 5 and len(graph.nodes) == 6


@pytest.mark.parametrize("base", [GRPO(), RLOO(), DrGRPO()])
def test_salt_invariants(base):
    batch = Batch.from_episodes(salt_group())
    salt, plain = SALT(base=base)(batch), base(batch)
    first_moves = [a[0] for a in salt]
    assert all(abs(v) < 1e-9 for v in first_moves)          # an edge everyone took: 0
    assert math.isclose(salt[2][1], plain[2][1])            # an edge one took: its own A
    assert math.isclose(sum(flat(salt)), sum(flat(plain)), abs_tol=1e-9)  # total kept


def test_salt_group_of_one_is_the_base():
    batch = Batch.from_episodes([ep([0, 1, 0])])
    assert flat(SALT()(batch)) == flat(GRPO()(batch))


def test_salt_repeated_edge_counting():
    # ep0 takes the edge (s1, look, s1) twice, ep1 once
    loop = [ep([0, 0, 0, 1], keys=["s0", "s1", "s1", "s1", "s9"],
               actions=["a", "look", "look", "go"]),
            ep([0, 0], keys=["s0", "s1", "s1"], actions=["a", "look"])]
    batch = Batch.from_episodes(loop)
    a0, a1 = flat(GRPO()(batch))[0], flat(GRPO()(batch))[-1]
    by_trajectory = SALT()(batch)
    by_occurrence = SALT(count="occurrence")(batch)
    assert math.isclose(by_trajectory[0][1], (a0 + a1) / 2, abs_tol=1e-9)
    assert math.isclose(by_occurrence[0][1], (2 * a0 + a1) / 3, abs_tol=1e-9)
    assert math.isclose(sum(flat(by_occurrence)), sum(flat(GRPO()(batch))), abs_tol=1e-9)


def test_other_matchers():
    episodes = salt_group()
    prefix = build_graph(episodes, PrefixMatch())
    assert prefix.shared(0, 0) == 4 and prefix.shared(1, 1) == 2
    text = build_graph(episodes, ObservationMatch())
    assert text.shared(0, 0) == 4
    data = prefix.to_dict()
    assert data["trajectories"] == 4
    first = [e for e in data["edges"] if e["traversals"] == 4]
    assert len(first) == 1 and first[0]["successes"] == 2


# ------------------------------------------------------------------ GiGPO
def gigpo_group():
    return [ep([0, 1], keys=["s0", "s1", "w"]), ep([0, 0, 0], keys=["s0", "s2", "s1", "z"])]


def test_gigpo_hand_worked():
    batch = Batch.from_episodes(gigpo_group())
    approx(GiGPO(gamma=1.0, episode_stats="trajectory")(batch), [1, 1, -1, -0.5, -1])
    # step rows: the episode mean is over 5 rows (2 of R=1, 3 of R=0): 0.4
    approx(GiGPO(gamma=1.0, omega=0.0)(batch), [0.6, 0.6, -0.4, -0.4, -0.4])
    s = 1 / math.sqrt(0.5)  # 0.5 / sample std of [1, 0]
    approx(GiGPO(gamma=1.0, mode="mean_std_norm", episode_stats="trajectory")(batch),
           [s / 2 * 2, s / 2 * 2, -s, -s / 2, -s])


def test_gigpo_invalid_penalty_lowers_the_row_score_as_verl_agent_does():
    """The issue's hand-worked case: omega = gamma = 1, mean_std_norm, penalty 0.1.

    Row scores [0.9, 1 | 1, 1]: mean 0.975, sample std 0.05, so A^E = [-1.5, 0.5 | 0.5, 0.5].
    Step returns at s0 are [0.9, 1] (A^S = -/+ 0.707), at s1 [1, 1] (A^S = 0).
    """
    first = ep([0, 1], keys=["s0", "s1", "w"])
    first.turns[0].action_valid = False
    batch = Batch.from_episodes([first, ep([0, 1], keys=["s0", "s1", "w"])])
    gigpo = GiGPO(omega=1.0, gamma=1.0, mode="mean_std_norm", invalid_penalty=0.1)
    approx(gigpo(batch), [-2.207, 0.5, 1.207, 0.5], tol=1e-3)  # eps = 1e-6 on a std of 0.05
    # the named variant: the penalty lowers the step return only (the old behaviour)
    step_only = GiGPO(omega=1.0, gamma=1.0, mode="mean_std_norm", invalid_penalty=0.1,
                      penalize_episode_score=False)
    approx(step_only(batch), [-0.707, 0.0, 0.707, 0.0], tol=1e-3)


def test_gigpo_single_multi_turn_episode_has_no_episode_advantage():
    # two rows of score 1: mean 1, so A^E = 0 (the reference); A^S = 0 (step groups of one)
    approx(GiGPO(gamma=1.0)(Batch.from_episodes([ep([0, 1])])), [0.0, 0.0])


def test_gigpo_edge_cases():
    approx(GiGPO()(Batch.from_episodes([ep([2.0])])), [2.0])  # one row: mean 0, std 1, A^E = R
    approx(GiGPO(mode="mean_std_norm")(Batch.from_episodes([ep([1]), ep([1])])), [0, 0])
    obs = GiGPO(gamma=1.0, anchor="observation", similarity=0.9,
                episode_stats="trajectory")(Batch.from_episodes(gigpo_group()))
    approx(obs, [1, 1, -1, -0.5, -1])


# ------------------------------------------------------------------ bad input
def test_bad_batches_are_named():
    with pytest.raises(BatchError, match="empty"):
        Batch.from_episodes([])
    with pytest.raises(BatchError, match="Group 'g' mixes tasks \\['t1', 't2'\\]"):
        Batch.from_episodes([ep([1], task="t1"), ep([0], task="t2")])
    with pytest.raises(BatchError, match="non-finite rewards on turn\\(s\\) \\[1\\]"):
        Batch.from_episodes([ep([0, float("nan")])])
    with pytest.raises(BatchError, match="has 2 turns but 1 rewards"):
        Batch.from_episodes([ep([0, 1])], rewards=[[1.0]])
    lone = ep([1])
    lone.group_id = None
    with pytest.raises(BatchError, match="no group_id"):
        Batch.from_episodes([lone])


# --------------------------------------------- the batch-wide estimators against plain loops
def loop_salt(batch, base_advantages, count):
    """SALT as the paper writes it, one group and one edge at a time (the earlier code)."""
    out = [a.copy() for a in base_advantages]
    for members, graph in zip(batch.groups, SALT().graphs(batch)):
        for occurrences in graph.occurrences.values():
            per_trajectory = {}
            for j, u in occurrences:
                per_trajectory.setdefault(j if count == "trajectory" else (j, u), []).append(
                    base_advantages[members[j]][u])
            value = np.mean([np.mean(v) for v in per_trajectory.values()])
            for j, u in occurrences:
                out[members[j]][u] = value
    return out


def loop_gigpo_steps(batch, gigpo):
    """GiGPO's step advantages (7), one anchor group at a time (the earlier code)."""
    returns = [discounted_returns(r, gigpo.gamma) for r in batch.rewards]
    out = [np.zeros_like(r) for r in returns]
    for members in batch.groups:
        groups = {}
        for i in members:
            for t, turn in enumerate(batch.episodes[i].turns):
                groups.setdefault(turn.state_key, []).append((i, t))
        for steps in groups.values():
            if len(steps) > 1:
                values = np.array([returns[i][t] for i, t in steps])
                scale = values.std(ddof=1) + gigpo.eps if gigpo.mode == "mean_std_norm" else 1
                for (i, t), value in zip(steps, (values - values.mean()) / scale):
                    out[i][t] = value
    return out


def loop_group_baselines(batch, normalize_std):
    """GRPO (or Dr.GRPO) and RLOO one group at a time, from their textbook formulas."""
    returns = batch.returns()
    grpo, rloo = np.empty_like(returns), np.empty_like(returns)
    for members in batch.groups:
        r = returns[list(members)]
        if len(r) == 1:
            grpo[list(members)], rloo[list(members)] = r / (1 + 1e-6 if normalize_std else 1), r
            continue
        centred = r - r.mean()
        grpo[list(members)] = centred / (r.std(ddof=1) + 1e-6) if normalize_std else centred
        rloo[list(members)] = r - (r.sum() - r) / (len(r) - 1)
    return grpo, rloo


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_wide_estimators_equal_their_loops(seed):
    """A random batch where groups share states and repeat edges, as real rollouts do."""
    rng = np.random.default_rng(seed)
    episodes = []
    for g in range(12):
        for _ in range(int(rng.integers(1, 7))):
            turns = int(rng.integers(1, 9))
            keys = [f"s{int(k)}" for k in rng.integers(0, 4, turns + 1)]
            actions = [f"a{int(a)}" for a in rng.integers(0, 3, turns)]
            rewards = rng.normal(size=turns).round(2).tolist()
            episodes.append(ep(rewards, group=f"g{g}", keys=keys, actions=actions))
    batch = Batch.from_episodes(episodes)
    assert 1 in {len(members) for members in batch.groups}  # groups of one are covered
    for estimator in (GRPO(), DrGRPO()):
        grpo, rloo = loop_group_baselines(batch, estimator.normalize_std)
        np.testing.assert_allclose(estimator.trajectory_advantages(batch), grpo, atol=1e-12)
        np.testing.assert_allclose(RLOO().trajectory_advantages(batch), rloo, atol=1e-12)
    for base in (GRPO(), RLOO()):
        for count in ("trajectory", "occurrence"):
            approx(SALT(base=base, count=count)(batch),
                   flat(loop_salt(batch, base(batch), count)), 1e-12)
    for mode in ("mean_norm", "mean_std_norm"):
        gigpo = GiGPO(mode=mode)
        approx(gigpo.step_advantages(batch), flat(loop_gigpo_steps(batch, gigpo)), 1e-12)


def test_edges_whose_codes_collide_stay_apart():
    from trainers.salt import _number_rows

    # columns 0 and 1 mix to the same code (1 * 1_000_000_007 + (5 - 1_000_000_007) == 5)
    parts = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0], [5, 5 - 1_000_000_007, 5]])
    ids, order = _number_rows(parts)
    assert ids[0] == ids[2] != ids[1]
    assert list(ids[order]) == sorted(ids) and list(order[ids[order] == ids[0]]) == [0, 2]


def test_invalid_actions_are_matched_by_their_raw_text():
    """Two invalid actions are the same edge only when their raw text is the same."""
    from trainers.graph import action_texts

    episodes = [ep([0, 1], keys=["s0", "s0", "s1"]), ep([0, 0], keys=["s0", "s0", "s2"]),
                ep([0, 1], keys=["s0", "s0", "s1"])]
    for episode, raw in zip(episodes, ["go nort", "go nort", "jump"]):
        episode.turns[0].parsed_action, episode.turns[0].action = None, raw
    turns = [t for e in episodes for t in e.turns]
    assert action_texts(iter(turns)) == ["<invalid>go nort", "a1", "<invalid>go nort", "a1",
                                         "<invalid>jump", "a1"]
    salt = SALT(base=DrGRPO())(Batch.from_episodes(episodes))
    assert salt[0][0] == salt[1][0] == pytest.approx((1 / 3 - 2 / 3) / 2)  # one edge
    assert salt[2][0] == pytest.approx(1 / 3)  # its own edge: its own advantage


def test_contested_steps_are_those_on_edges_of_both_a_win_and_a_loss():
    won = ep([0, 1], keys=["s0", "s1", "s2"], actions=["go", "take"])
    lost = ep([0, 0], keys=["s0", "s1", "s3"], actions=["go", "drop"])
    also_won = ep([1], keys=["s0", "s4"], actions=["jump"])
    graph = build_graph([won, lost, also_won])
    assert graph.contested_steps() == 2  # s0 -go-> s1, taken by the win and the loss
