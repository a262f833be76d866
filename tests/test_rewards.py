import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import (
    GatedAccumulation,
    Hierarchy,
    Level,
    MinForm,
    MissingChannelError,
    Outcome,
    ReNorm,
    RewardSpecError,
    ShopAction,
    Sum,
    ToolCallReward,
    TurnLevel,
    Weighted,
    from_dict,
    from_yaml,
    to_yaml,
)
from rewards.patch import swe_rl_reward
from rewards.shop import rouge_l
from tests.reward_episodes import episode_of

SPECS_USED = []  # every spec a hand-worked test scores with, for the YAML round trip


def score(spec, episode):
    SPECS_USED.append((spec, episode))
    return spec(episode)


def close(a, b):
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=1e-9) for x, y in zip(a, b))


# ------------------------------------------------------------------ plain specs
def test_weighted_sums_channels_per_turn():
    ep = episode_of([{"progress": 0, "format": 1}, {"progress": 1, "format": 0},
                     {"progress": 0, "format": 1}])
    assert close(score(Weighted({"progress": 2, "format": 0.5}), ep), [0.5, 2.0, 0.5])


def test_outcome_lands_on_the_last_turn():
    ep = episode_of([{}, {}, {}], outcome={"success": 1.0})
    assert close(score(Outcome("success", weight=2), ep), [0, 0, 2])
    assert close(score(Outcome("success") + Outcome("success"), ep), [0, 0, 2])


def test_turn_level_guide_placement():
    won = episode_of([{"progress": 0}, {"progress": 0.5}, {"progress": 0}, {"progress": 0.5}],
                     outcome={"success": 1.0})
    # won: N = number of rewarding turns = 2
    assert close(score(TurnLevel("progress"), won), [0, 0.25, 0, 0.25])
    lost = episode_of([{"progress": 1}, {"progress": 0}, {"progress": 1}],
                      outcome={"success": 0.0})
    # not won: N = max_total = 4
    assert close(score(TurnLevel("progress", max_total=4), lost), [0.25, 0, 0.25])
    assert close(score(TurnLevel("progress", normalise="rewarding_turns"), lost), [0.5, 0, 0.5])
    assert close(score(TurnLevel("progress", outcome="success", outcome_weight=2), won),
                 [0, 0.25, 0, 2.25])


# ------------------------------------------------------------------ G-RA
FMT = Weighted({"format": 0.1})


def swe_episode(submitted, resolved, n=3):
    return episode_of([{"format": 1.0}] * n, outcome={"submitted": submitted,
                                                      "resolved": resolved})


def test_gra_gate_open_counts_the_turn_rewards():
    spec = GatedAccumulation(high="resolved", threshold=1.0, immediate=FMT)
    assert close(score(spec, swe_episode(1, 1.0)), [0.1, 0.1, 1.1])


def test_gra_gate_shut_keeps_only_the_outcome():
    spec = GatedAccumulation(high="resolved", threshold=1.0, immediate=FMT)
    assert close(score(spec, swe_episode(1, 0.5)), [0, 0, 0.5])
    strict = GatedAccumulation(high="resolved", threshold=1.0, immediate=FMT, comparison=">")
    assert close(score(strict, swe_episode(1, 1.0)), [0, 0, 1.0])


def test_gra_priority_form_and_an_episode_that_never_submits():
    spec = GatedAccumulation(high=("submitted", "resolved"), threshold=(1.0, 1.0), immediate=FMT)
    assert close(score(spec, swe_episode(0, 0)), [0, 0, 0])        # timeout, no submit
    assert close(score(spec, swe_episode(1, 0)), [0, 0, 1.0])      # submitted, not resolved
    assert close(score(spec, swe_episode(1, 1)), [0.1, 0.1, 2.1])  # both gates open
    # the ungated twin (D-RA) pays the turn rewards even without a submit
    assert close(score(spec.ungated(), swe_episode(0, 0)), [0.1, 0.1, 0.1])


def test_three_level_hierarchy_with_a_failing_middle_level():
    spec = Hierarchy(levels=(
        Level(Outcome("correct"), threshold=1.0),
        Level(Outcome("persuasive"), threshold=0.5, weight=0.5),
        Level(Weighted({"efficiency": 1.0}), weight=0.2),
    ))
    ep = episode_of([{"efficiency": 1.0}, {"efficiency": 1.0}],
                    outcome={"correct": 1.0, "persuasive": 0.2})
    # L1 passes and counts 1; L2 counts 0.5 * 0.2 but fails its threshold; L3 is gated off
    assert close(score(spec, ep), [0, 1.1])
    ep_pass = episode_of([{"efficiency": 1.0}, {"efficiency": 1.0}],
                         outcome={"correct": 1.0, "persuasive": 0.6})
    assert close(score(spec, ep_pass), [0.2, 1.0 + 0.3 + 0.2])


# ------------------------------------------------------------------ ToolRL
GOLD = ('<think>need weather</think>\n<tool_call>\n'
        '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>')


def toolrl_episode(*responses):
    return episode_of([{}] * len(responses), actions=list(responses),
                      infos=[{"expert_action": GOLD}] * len(responses))


def call_text(*calls, think="ok"):
    body = "\n".join(calls)
    return f"<think>{think}</think>\n<tool_call>\n{body}\n</tool_call>"


WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}'


def test_toolrl_exact_match():
    assert close(score(ToolCallReward(), toolrl_episode(call_text(WEATHER))), [4.0])


def test_toolrl_partial_name_match():
    extra = '{"name": "get_time", "arguments": {"city": "Paris"}}'
    # S = J({gw}, {gw, gt}) = 1/2, + gw's best match: J(keys) 1 + 2 equal values = 3.5
    # S_max = 1 + (1 + 2) = 4; R_correct = 6 * 3.5 / 4 - 3 = 2.25; + format 1
    assert close(score(ToolCallReward(), toolrl_episode(call_text(WEATHER, extra))), [3.25])


def test_toolrl_wrong_parameter_values():
    wrong = '{"name": "get_weather", "arguments": {"city": "London", "unit": "c"}}'
    # S = 1 + (1 + 1) = 3; R_correct = 6 * 3 / 4 - 3 = 1.5; + format 1
    assert close(score(ToolCallReward(), toolrl_episode(call_text(wrong))), [2.5])


def test_toolrl_unparseable_output():
    bad = "<think>hm</think>\n<tool_call>\n{not json\n</tool_call>"
    no_tags = 'get_weather(city="Paris")'
    # layout fine but JSON broken: format 1, correctness -3; no tags at all: 0 - 3
    assert close(score(ToolCallReward(), toolrl_episode(bad, no_tags)), [-2.0, -3.0])


def test_toolrl_schedules_and_range():
    ep = toolrl_episode(call_text(WEATHER))
    assert close(score(ToolCallReward(correct_max=1), ep), [2.0])
    assert close(score(ToolCallReward(schedule="two_stage", training_step=0), ep), [2.0])
    assert close(score(ToolCallReward(schedule="two_stage", training_step=30), ep), [3.5])
    assert close(score(ToolCallReward(schedule="dynamic", training_step=0), ep), [4.0])
    assert close(score(ToolCallReward(schedule="dynamic", training_step=150), ep), [4.0])
    bad = toolrl_episode("no tags at all")
    assert close(score(ToolCallReward(schedule="dynamic", training_step=0), bad), [-4.0])


# ------------------------------------------------------------------ PURE, ReNorm
def test_pure_min_form_with_the_worst_step_in_the_middle():
    ep = episode_of([{"process": 0.5}, {"process": -0.8}, {"process": 0.9}])
    rewards = score(MinForm("process"), ep)
    assert close(rewards, [0.0, -1.7, 0.9])
    returns = [sum(rewards[t:]) for t in range(3)]
    assert close(returns, [-0.8, -0.8, 0.9])  # return from t = min of the future
    soft = score(MinForm("process", mode="softmax", temperature=0.1), ep)
    assert math.isclose(sum(soft), -0.8, abs_tol=1e-4)
    assert abs(soft[1] + 0.8) < 1e-4 and abs(soft[2]) < 1e-6


def test_renorm_centres_process_and_outcome():
    ep = episode_of([{"process": 0.8}, {"process": 0.2}], outcome={"success": 1.0})
    assert close(score(ReNorm(), ep), [0.3, 0.2])
    assert close(score(ReNorm(outcome_on="every"), ep), [0.8, 0.2])


# ------------------------------------------------------------------ Shop-R1
def shop_episode(response, gold):
    return episode_of([{}], actions=[response], infos=[{"gold_action": gold}])


def test_shop_r1_with_a_wrong_action_type():
    gold = {"type": "type_and_submit", "name": "search", "text": "red running shoes"}
    wrong = '{"rationale": "buy it", "action": {"type": "click", "name": "search"}}'
    assert close(score(ShopAction(), shop_episode(wrong, gold)), [0.5])  # format only


def test_shop_r1_levels():
    gold = {"type": "type_and_submit", "name": "search", "text": "red running shoes"}
    good = ('{"rationale": "r", "action": {"type": "type_and_submit", "name": "search", '
            '"text": "red shoes"}}')
    # 0.5 + 0.3 + 0.1 + 0.1 + 0.1 * 1 + ROUGE-L("red shoes", "red running shoes") = 0.8
    assert close(score(ShopAction(), shop_episode(good, gold)), [1.1 + 0.8])
    assert close(score(ShopAction(), shop_episode("not json", gold)), [0.0])
    stop = '{"rationale": "done", "action": {"type": "terminate"}}'
    assert close(score(ShopAction(), shop_episode(stop, {"type": "terminate"})), [0.8])
    assert math.isclose(rouge_l("red shoes", "red running shoes"), 0.8)


# ------------------------------------------------------------------ SWE-RL
FILES = {"calc.py": "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"}
ORACLE = {"calc.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"}


def swe_response(search, replace, think="fix add"):
    return (f"<think>{think}</think><solution>\n```python\n### calc.py\n<<<<<<< SEARCH\n"
            f"{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n</solution>")


def test_swe_rl_patch_similarity():
    exact = swe_response("def add(a, b):\n    return a - b", "def add(a, b):\n    return a + b")
    assert swe_rl_reward(exact, FILES, ORACLE) == 1.0
    other = swe_response("def sub(a, b):\n    return a - b", "def sub(a, b):\n    return b - a")
    assert 0.0 < swe_rl_reward(other, FILES, ORACLE) < 1.0
    assert swe_rl_reward(swe_response("nothing like this", "x"), FILES, ORACLE) == -1.0
    assert swe_rl_reward(swe_response("return a - b", "return a - b"), FILES, ORACLE) == -1.0
    assert swe_rl_reward(exact.replace("fix add", " "), FILES, ORACLE) == -1.0


# ------------------------------------------------------------------ YAML round trip
def test_yaml_round_trip_scores_every_test_episode_identically():
    assert len(SPECS_USED) > 20  # the tests above ran first, in file order
    for spec, episode in SPECS_USED:
        text = to_yaml(spec)
        again = from_yaml(text)
        assert again == spec, text
        assert again(episode) == spec(episode)


def test_config_dict_form():
    spec = from_dict({"type": "gated", "high": "resolved", "threshold": 1.0,
                      "immediate": {"type": "weighted", "weights": {"format": 0.1}}})
    assert spec == GatedAccumulation(high="resolved", threshold=1.0, immediate=FMT)
    assert "GatedAccumulation(high='resolved'" in repr(spec)


# ------------------------------------------------------------------ bad input
def test_missing_channel_is_named_with_what_exists():
    ep = episode_of([{"progress": 1.0, "format": 1.0}], outcome={"success": 1.0})
    with pytest.raises(MissingChannelError, match=r"no reward channel 'progres'.*"
                       r"format, progress.*Did you mean `progress`"):
        Weighted({"progres": 1.0})(ep)
    with pytest.raises(MissingChannelError, match="no outcome channel 'resolved'.*success"):
        GatedAccumulation(high="resolved", immediate=FMT)(ep)


def test_bad_weights_and_types_are_named():
    with pytest.raises(RewardSpecError, match="weight of channel 'format' must be a number, "
                       "got 'high'"):
        Weighted({"format": "high"})
    with pytest.raises(RewardSpecError, match="Unknown reward spec type 'gate'.*"
                       "Known types: .*gated.*Did you mean `gated`"):
        from_dict({"type": "gate"})
    with pytest.raises(RewardSpecError, match="Weighted has no key 'weight'.*weights"):
        from_dict({"type": "weighted", "weight": {"a": 1}})
    with pytest.raises(RewardSpecError, match="2 high-level channel.*1 threshold"):
        GatedAccumulation(high=("a", "b"), threshold=1.0, immediate=FMT)
    with pytest.raises(RewardSpecError, match="non-finite reward"):
        Weighted({"x": 1.0})(episode_of([{"x": float("nan")}]))


# ------------------------------------------------------------------ properties
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
nonneg = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def channel_episodes(values=finite, min_turns=1):
    return st.integers(min_turns, 6).flatmap(lambda n: st.tuples(
        st.lists(st.fixed_dictionaries({"a": values, "b": values}), min_size=n, max_size=n),
        st.fixed_dictionaries({"success": st.sampled_from([0.0, 1.0]), "o": finite}),
    ))


ALL_SPECS = [
    Weighted({"a": 0.5, "b": -2}), Outcome("o"), TurnLevel("a", outcome="o"),
    TurnLevel("b", normalise="max_total", max_total=3),
    GatedAccumulation(high="o", threshold=0.0, immediate=Weighted({"a": 1})),
    Hierarchy(levels=({"reward": {"type": "outcome", "channel": "success"}, "threshold": 1},
                      {"reward": {"type": "weighted", "weights": {"b": 1}}})),
    MinForm("a"), MinForm("b", mode="softmax", temperature=0.5), ReNorm(process="a", outcome="o"),
    Sum(terms=(Weighted({"a": 1}), Outcome("success")), weights=(0.5, 2.0)),
]


@settings(max_examples=60, deadline=None)
@given(channel_episodes())
def test_outputs_are_finite_for_finite_channels(data):
    turns, outcome = data
    ep = episode_of(turns, outcome=outcome)
    for spec in ALL_SPECS:
        rewards = spec(ep)
        assert len(rewards) == len(turns)
        assert all(math.isfinite(r) for r in rewards), spec


@settings(max_examples=60, deadline=None)
@given(channel_episodes(st.floats(-1e3, 1e3)), channel_episodes(st.floats(-1e3, 1e3)),
       st.floats(-10, 10), st.floats(-10, 10))
def test_weighted_is_linear(x, y, a, b):
    n = min(len(x[0]), len(y[0]))
    spec = Weighted({"a": 0.7, "b": -1.3})
    mix = [{k: a * x[0][t][k] + b * y[0][t][k] for k in "ab"} for t in range(n)]
    lhs = spec(episode_of(mix))
    rx, ry = spec(episode_of(x[0][:n])), spec(episode_of(y[0][:n]))
    assert all(math.isclose(m, a * p + b * q, rel_tol=1e-6, abs_tol=1e-6)
               for m, p, q in zip(lhs, rx, ry))


@settings(max_examples=60, deadline=None)
@given(channel_episodes(nonneg), finite, nonneg, st.sampled_from([">=", ">"]))
def test_gated_never_exceeds_its_ungated_twin(data, threshold, p, comparison):
    turns, outcome = data
    ep = episode_of(turns, outcome={**outcome, "p": p})
    # the single gate: any outcome value; the priority form: a gated outcome level must be
    # non-negative too, or shutting it off would raise the total
    for spec in (GatedAccumulation(high="o", threshold=threshold, comparison=comparison,
                                   immediate=Weighted({"a": 1, "b": 0.5})),
                 GatedAccumulation(high=("success", "p"), threshold=(1.0, threshold),
                                   immediate=Weighted({"a": 1}))):
        gated, ungated = spec(ep), spec.ungated()(ep)
        assert all(g <= u + 1e-9 for g, u in zip(gated, ungated))


def test_rates_and_channel_values():
    from agentgym.summary import channel_values, rates

    done = episode_of([{"format": 1.0}] * 2, outcome={"modified": 1.0, "success": 1.0})
    done.terminated = True
    cut = episode_of([{"format": 0.0}] * 3, outcome={"modified": 0.0, "success": 0.0})
    cut.truncated = True
    assert rates([done, cut]) == {"success_rate": 0.5, "completion_rate": 0.5,
                                  "modification_rate": 0.5}
    values = channel_values([done, cut])
    assert values["turn/format"] == [2.0, 0.0]
    assert values["outcome/modified"] == [1.0, 0.0]
