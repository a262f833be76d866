"""Training configs: every mistake refused at load with file:line and what is allowed."""

import importlib.util
from pathlib import Path

import pytest

from agentgym.errors import AgentGymError
from trainers import GiGPO
from trainers.config import (
    ConfigError,
    LossConfig,
    TrainConfig,
    config_reference,
    load_config,
)
from trainers.estimator_specs import estimator_from_dict

BASE = "env: {id: TextWorld-v0}\n"


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def refused(tmp_path, text, pattern, overrides=()):
    with pytest.raises(ConfigError, match=pattern) as caught:
        load_config(write(tmp_path, text), overrides)
    return str(caught.value)


@pytest.mark.parametrize(("text", "pattern"), [
    ("rl:\n  steps: two\n", r"config.yaml:3: rl.steps: Input should be a valid integer "
                            r"\(got 'two'\)"),
    ("sft:\n  episodes: 4\n  epochs: -3\n",
     r"config.yaml:4: sft.epochs: Input should be greater than or equal to 0 \(got -3\)"),
    ("loss: {loss_agg: tokenmean}\n", r"config.yaml:2: loss.loss_agg: Input should be "
                                      r"'token-mean', 'seq-mean-token-mean' or "
                                      r"'seq-mean-token-sum-norm' \(got 'tokenmean'\)"),
    ("loss:\n  kl_estimator: k2\n", r"config.yaml:3: loss.kl_estimator: Input should be 'k1' "
                                    r"or 'k3' \(got 'k2'\)"),
    ("estimator: {type: gigpo, anchor: statekey}\n",
     r"config.yaml:2: estimator: gigpo: anchor: Input should be 'state_key' or 'observation' "
     r"\(got 'statekey'\)"),
    ("estimator: {type: gigpo, mode: std}\n",
     r"config.yaml:2: estimator: gigpo: mode: Input should be 'mean_norm' or 'mean_std_norm'"),
    ("estimator:\n  type: salt\n  count: occurence\n",
     r"config.yaml:2: estimator: salt: count: Input should be 'trajectory' or 'occurrence' "
     r"\(got 'occurence'\)"),
    ("estimator: {type: salt, match: states}\n",
     r"unknown SALT match 'states'; matches: state_key, observation, prefix"),
    ("estimator: {type: salty}\n", r"config.yaml:2: estimator: unknown estimator type 'salty'; "
                                   r"types: grpo, .*Did you mean `salt`"),
    ("rl:\n  stepz: 3\n", r"config.yaml:3: unknown key 'stepz' in rl; allowed: steps, .*"
                          r"Did you mean `steps`"),
    ("lora: {rank: 8}\n", r"config.yaml:2: unknown key 'rank' in lora; allowed: r, alpha, "
                          r"dropout"),
    ("sampling: {engine: sglang}\n", r"config.yaml:2: sampling.engine: Input should be "
                                     r"'transformers' or 'vllm' \(got 'sglang'\)"),
    ("sampling: {top_p: 1.5}\n", r"sampling.top_p: Input should be less than or equal to 1"),
    ("rl: {steps: true}\n", r"rl.steps: Input should be a valid integer \(got True\)"),
    ("seeds: [1, 2, 1]\n", r"config.yaml:2: seeds: seeds must differ"),
    ("sampling: {tree: {width: 2}}\n", r"config.yaml:2: sampling.tree: .*say where a tree "
                                       r"branches: every .*, at .* or uncertain"),
    ("sampling:\n  tree: {width: 1, every: 2}\n",
     r"config.yaml:3: sampling.tree.width: Input should be greater than or equal to 2"),
    ("model: {name: /nope}\n", r"config.yaml:2: model.name: Model '/nope' is not here"),
    ("reward: {type: outcome, channel: resolved}\n",
     r"config.yaml:2: reward: the reward spec names a channel TextWorld-v0 does not record.*"
     r"'resolved'.*outcome channels: success"),
    ("reward: {type: outcom}\n", r"config.yaml:2: reward: .*outcom"),
])
def test_each_mistake_is_refused_with_its_line_and_what_is_allowed(tmp_path, text, pattern):
    refused(tmp_path, BASE + text, pattern)


def test_an_unknown_env_names_its_line(tmp_path):
    refused(tmp_path, "seed: 1\nenv: {id: TextWorld-v9}\n",
            r"config.yaml:2: env.id: No environment 'TextWorld-v9'")


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    message = refused(tmp_path, BASE + "rl: {steps: two, tasks: 0}\nloss: {clip: -1}\n",
                      "rl.steps")
    assert "rl.tasks" in message and "loss.clip" in message and len(message.splitlines()) == 3


def test_a_vllm_engine_needs_vllm_installed(tmp_path):
    path = write(tmp_path, BASE + "sampling: {engine: vllm}\n")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ConfigError, match=r"config.yaml:2: sampling.engine: engine 'vllm' "
                           r"needs the vllm package, which is not installed"):
            load_config(path)
    else:
        assert load_config(path).sampling.engine == "vllm"


def test_key_value_overrides_set_any_field_and_are_checked(tmp_path):
    path = write(tmp_path, BASE + "rl: {steps: 5}\n")
    config = load_config(path, ["rl.steps=3", "loss.kl_coef=0.1", "sampling.stop=[</a>]",
                                "estimator={type: gigpo, gamma: 0.9}", "env.kwargs.preset=easy"])
    assert config.rl.steps == 3 and config.loss.kl_coef == 0.1
    assert config.sampling.stop == ["</a>"] and config.env.kwargs == {"preset": "easy"}
    assert config.estimator == GiGPO(gamma=0.9)
    refused(tmp_path, BASE, r"override rl.steps='two': rl.steps: Input should be a valid "
                            r"integer", ["rl.steps=two"])
    refused(tmp_path, BASE, r"override rl.stepz=3: unknown key 'stepz' in rl", ["rl.stepz=3"])
    refused(tmp_path, BASE, r"override 'rlsteps': write key=value", ["rlsteps"])


def test_configs_round_trip_through_plain_data(tmp_path):
    config = load_config(write(tmp_path, BASE + "estimator: {type: salt, base: {type: gigpo, "
                               "mode: mean_std_norm}, match: observation}\n"
                               "reward: {type: outcome, channel: success, weight: 2.0}\n"))
    again = TrainConfig.model_validate(config.to_dict())
    assert again == config and again.estimator.base == GiGPO(mode="mean_std_norm")


def test_missing_and_malformed_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")
    refused(tmp_path, "env: [\n", r"config.yaml: not valid YAML")
    refused(tmp_path, "- a\n- b\n", r"a config is a mapping of sections; got list")


def test_sections_check_direct_construction_too():
    with pytest.raises(ValueError, match="kl_estimator"):
        LossConfig(kl_estimator="k2")
    with pytest.raises(AgentGymError, match="anchor"):
        estimator_from_dict({"type": "gigpo", "anchor": "statekey"})


@pytest.mark.parametrize("path", sorted(Path("configs").rglob("*.yaml")))
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.rl.steps > 0 or (config.sft.episodes > 0 and config.sft.epochs > 0)


def test_the_config_reference_is_current():
    reference = config_reference()
    for field in ("`kl_estimator`", "`group_size`", "`checkpoint_every`", "`top_p`"):
        assert field in reference
    assert "| `clip` | float > 0.0 | `0.2` | PPO ratio clip epsilon. |" in reference
    assert Path("docs/config.md").read_text() == reference + "\n", \
        "docs/config.md is stale: run `agentgym config-reference > docs/config.md`"
