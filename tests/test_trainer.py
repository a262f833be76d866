import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import agentgym
from agentgym.hf_policy import TransformersPolicy
from agentgym.policies import Conversation
from rewards import Outcome
from trainers import GRPO, Batch
from trainers.config import ConfigError, load_config
from trainers.learner import Learner, LossConfig, OptimConfig
from trainers.models import tiny_from_texts
from trainers.train import rows_for, sft_learning_rate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world():
    env = agentgym.make("TextWorld-v0", preset="easy", max_turns=4)
    experts = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=6, progress=False)
    randoms = agentgym.rollout(env, agentgym.RandomPolicy(), tasks=2, group_size=3, seed=3,
                               progress=False)
    texts = [env.system_prompt()] + [t.observation + " " + t.action
                                     for e in experts + randoms for t in e.turns]
    model, tokenizer = tiny_from_texts(texts * 3, vocab_size=500)
    yield env, experts, randoms, model, tokenizer
    env.close()


def test_policy_returns_tokens_and_logprobs(world):
    env, _, _, model, tokenizer = world
    obs, info = env.reset(seed=0)
    conversation = Conversation([{"role": "system", "content": env.system_prompt()},
                                 {"role": "user", "content": obs}], info, env.protocol.encode)
    greedy = TransformersPolicy(model, tokenizer, temperature=0, max_new_tokens=12)
    first, second = greedy.generate([conversation, conversation])
    assert first.token_ids == second.token_ids and len(first.token_ids) == len(first.logprobs)
    assert all(lp <= 0 for lp in first.logprobs)
    assert tokenizer.decode(first.token_ids, skip_special_tokens=True) == first.text


def test_cached_sampling_matches_a_full_forward_and_uses_the_current_cache_name(world):
    """Each token's log-prob from the incremental (cached) loop equals the one a single
    forward pass over prompt + reply gives; a cache handed over under a deprecated name
    would warn (FutureWarning, an error here), a cache dropped would change the numbers."""
    env, _, _, model, tokenizer = world
    obs, info = env.reset(seed=1)
    conversation = Conversation([{"role": "system", "content": env.system_prompt()},
                                 {"role": "user", "content": obs}], info, env.protocol.encode)
    policy = TransformersPolicy(model, tokenizer, temperature=1.0, max_new_tokens=10, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        (reply,) = policy.generate([conversation])
    prompt = tokenizer(policy.prompts(tokenizer, [conversation])[0],
                       add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + reply.token_ids])).logits[0].float()
    full = torch.log_softmax(logits[len(prompt) - 1:-1], -1)
    expected = [float(full[i, t]) for i, t in enumerate(reply.token_ids)]
    assert len(reply.token_ids) > 1
    assert reply.logprobs == pytest.approx(expected, abs=1e-4)


def test_sft_fits_the_expert_actions(world):
    _, experts, _, model, tokenizer = world
    learner = Learner(type(model)(model.config), tokenizer, OptimConfig(lr=3e-3))
    rows = rows_for(experts, None, tokenizer, 2048)
    first = learner.sft_step(rows)["sft/loss"]
    for _ in range(30):
        last = learner.sft_step(rows)["sft/loss"]
    assert last < first / 2


def test_the_warm_up_takes_one_optimiser_step_per_minibatch_of_its_own_size(world):
    _, experts, _, model, tokenizer = world
    learner = Learner(type(model)(model.config), tokenizer, OptimConfig(minibatch_size=16))
    rows = rows_for(experts, None, tokenizer, 2048)
    learner.sft_step(rows, minibatch_size=3)
    adam_steps = next(iter(learner.optimizer.state.values()))["step"]
    assert len(rows) > 3 and int(adam_steps) == -(-len(rows) // 3)


def test_the_warm_up_rate_falls_from_its_peak_to_a_tenth():
    rates = [sft_learning_rate(3e-3, epoch, 6) for epoch in range(6)]
    assert rates[0] == pytest.approx(3e-3) and rates[-1] == pytest.approx(3e-4)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert sft_learning_rate(3e-3, 0, 1) == 3e-3  # one epoch: the peak


def test_resume_reproduces_the_next_steps_loss(world, tmp_path):
    _, _, randoms, model, tokenizer = world
    fresh = type(model)(model.config)
    fresh.load_state_dict(model.state_dict())
    learner = Learner(fresh, tokenizer, OptimConfig(lr=1e-3, minibatch_size=2),
                      LossConfig(kl_coef=0.1))
    for n, episode in enumerate(randoms):
        episode.outcome.channels["score"] = float(n % 3)  # spread the returns in each group
    advantages = GRPO()(Batch.from_episodes(randoms, rewards=Outcome("score")))
    rows = rows_for(randoms, advantages, tokenizer, 2048)
    learner.rl_step(rows)
    learner.save(tmp_path / "ckpt")
    expected = learner.rl_step(rows)
    restored, _ = Learner.load(tmp_path / "ckpt")
    again = restored.rl_step(rows)
    assert restored.step == learner.step == 2
    for key in ("losses/loss", "losses/kl", "losses/clipfrac"):
        assert again[key] == pytest.approx(expected[key], abs=1e-6), key
    assert expected["losses/kl"] > 0  # the reference was saved and restored, not re-copied


TINY_RUN = """
env: {{id: TextWorld-v0, kwargs: {{preset: easy, max_turns: {turns}, num_tasks: 20}}}}
model: {{name: tiny, vocab_size: 400}}
sft: {{episodes: 0}}
"""


def train_tiny(tmp_path, name, body, *flags, turns=3, base=TINY_RUN):
    """``agentgym train`` on a tiny TextWorld config (no SFT) plus ``body``; its metrics."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"output: {tmp_path / name}\n" + base.format(turns=turns) + body)
    done = subprocess.run([sys.executable, "-m", "agentgym.cli", "train", str(config), *flags],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = tmp_path / name / "metrics.jsonl"
    return [json.loads(line) for line in metrics.read_text().splitlines()] \
        if metrics.is_file() else []


def end_to_end_config(output, sft_episodes=4, parallel_envs=4):
    """A whole tiny run: SFT, 2 RL updates, evaluations, a checkpoint per update."""
    return f"""
output: {output}
env: {{id: TextWorld-v0, kwargs: {{preset: easy, max_turns: 3, num_tasks: 20}}}}
model: {{name: tiny, vocab_size: 400}}
sampling: {{max_new_tokens: 12, stop: ["</action>"]}}
sft: {{episodes: {sft_episodes}, epochs: 2}}
rl: {{steps: 2, tasks: 2, group_size: 2, parallel_envs: {parallel_envs}}}
eval: {{every: 2, tasks: 2}}
checkpoint_every: 1
"""


def test_a_tiny_run_end_to_end(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(end_to_end_config(tmp_path / "run"))
    cli = [sys.executable, "-m", "agentgym.cli"]
    done = subprocess.run([*cli, "train", str(config)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    log = (tmp_path / "run" / "train.log").read_text()  # a line per phase, also printed
    for phase in (r"tasks \(generated where new\): 6 in [\d.]+ s",
                  r"SFT data: expert episodes: [\d.]+ s  4 episodes",
                  r"SFT epochs: 2 in [\d.]+ s  loss [\d.]+", r"evaluation before RL: [\d.]+ s",
                  r"RL updates: 2 in [\d.]+ s  step +2"):
        assert re.search(phase, log) and re.search(phase, done.stdout), phase
    assert "eval/success_rate" in rows[0] and "losses/clipfrac" in rows[1]
    assert "channels/turn/format" in rows[1]
    # token-in/token-out: the sampler's log-probs are compared with the trainer's
    assert rows[1]["sampler/tokens"] > 0
    # same weights, other kernels (cached decoding, left padding): float noise, not the nats a
    # misaligned token would cost
    assert 0 <= rows[1]["sampler/logprob_gap_mean"] <= rows[1]["sampler/logprob_gap_max"] < 0.05
    episodes = agentgym.read_episodes(tmp_path / "run" / "episodes.jsonl")
    assert len(episodes) == 8 and all(t.advantage is not None for e in episodes
                                      for t in e.turns)
    run, twin = tmp_path / "run", tmp_path / "twin"
    shutil.copytree(run, twin)
    plots = subprocess.run([*cli, "plot", str(run), str(twin), "--compare",
                            str(tmp_path / "both.png")], capture_output=True, text=True)
    assert plots.returncode == 0
    for name in ("success.png", "return.png", "losses.png", "channels.png"):
        assert (run / name).stat().st_size > 1000
    assert (tmp_path / "both.png").stat().st_size > 1000
    resumed = subprocess.run([*cli, "train", str(config), "--resume"], capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout
    # eval of a run's checkpoint plays as the run's own evaluation did: the same figure
    report = tmp_path / "report.json"
    evaluated = subprocess.run([*cli, "eval", str(run / "checkpoints" / "step-2"), "--json",
                                str(report)], capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "config.json" in evaluated.stdout and "success_rate" in evaluated.stdout
    data = json.loads(report.read_text())
    assert data["overall"]["tasks"] == 2 and data["settings"]["max_new_tokens"] == 12
    assert data["overall"]["success_rate"] == rows[2]["eval/success_rate"]
    assert data["overall"]["mean_return"] == pytest.approx(rows[2]["eval/mean_return"])
    # a checkpoint outside a run: said loudly, defaults and what is given
    loose = tmp_path / "loose"
    shutil.copytree(run / "checkpoints" / "step-2", loose)
    evaluated = subprocess.run([*cli, "eval", str(loose), "--env", "TextWorld-v0", "--tasks",
                                "2", "--max-new-tokens", "8", "--env-arg", "preset=easy"],
                               capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0 and "success_rate" in evaluated.stdout
    assert "No training run around" in evaluated.stderr and "(defaults)" in evaluated.stdout




def test_a_run_with_trees_branching_where_unsure_logs_what_they_saved(tmp_path):
    rows = train_tiny(tmp_path, "run", """
sampling: {max_new_tokens: 8, tree: {width: 2, uncertain: true}}
rl: {steps: 1, tasks: 2, group_size: 4, parallel_envs: 2}
eval: {every: 1, tasks: 1}
""", turns=4)
    update = rows[1]
    assert update["tree/steps_saved"] > 0 and update["tree/tokens_saved"] > 0
    assert 0 <= update["charts/contested_steps"] <= 1
    episodes = agentgym.read_episodes(tmp_path / "run" / "episodes.jsonl")
    assert len(episodes) == 8 and all("tree" in e.metadata for e in episodes)


def test_seeds_train_side_by_side_and_plot_as_a_mean_with_a_band(tmp_path):
    train_tiny(tmp_path, "seeds", """
seeds: [3, 4]
sampling: {max_new_tokens: 8}
rl: {steps: 2, tasks: 1, group_size: 2, parallel_envs: 2}
eval: {every: 1, tasks: 2}
""", "--parallel-seeds", "2")
    cli = [sys.executable, "-m", "agentgym.cli"]
    for seed in (3, 4):
        run = tmp_path / "seeds" / f"seed-{seed}"
        assert json.loads((run / "config.json").read_text())["seed"] == seed
        assert [json.loads(line)["step"] for line in
                (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    single = tmp_path / "seeds" / "seed-3"
    plots = subprocess.run([*cli, "plot", str(tmp_path / "seeds"), str(single), "--compare",
                            str(tmp_path / "both.png")], capture_output=True, text=True)
    assert plots.returncode == 0, plots.stderr[-2000:]
    assert (tmp_path / "seeds" / "success.png").stat().st_size > 1000
    assert (tmp_path / "both.png").stat().st_size > 1000
    from trainers.plots import comparison_figure, curve
    from trainers.runs import seed_runs

    rates = comparison_figure([tmp_path / "seeds"], "eval/success_rate")
    # from zero: matplotlib's own margin would put the axis below it
    assert rates.axes[0].get_ylim()[0] == 0

    steps, means, lows, highs = curve(seed_runs(tmp_path / "seeds"), "charts/return")
    assert steps == [1, 2] and all(lo <= m <= hi for lo, m, hi in zip(lows, means, highs))
    # eval of the seeds folder: each seed's last checkpoint, pooled, tasks tagged by seed
    pooled = tmp_path / "pooled.json"
    evaluated = subprocess.run([*cli, "eval", str(tmp_path / "seeds"), "--json", str(pooled)],
                               capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    data = json.loads(pooled.read_text())
    assert set(data["runs"]) == {"seed-3", "seed-4"} and data["overall"]["tasks"] == 4
    assert {t["run"] for t in data["tasks"]} == {"seed-3", "seed-4"}
    # compared with the same seeds evaluated again: paired seed by seed, no difference
    versus = subprocess.run([*cli, "compare", str(pooled), str(tmp_path / "seeds")],
                            capture_output=True, text=True, timeout=600)
    assert versus.returncode == 0, versus.stderr[-2000:]
    said = " ".join(versus.stdout.split())  # the table may wrap its title
    assert "4 paired episodes" in said and "no significant difference" in said


WARMED_RUN = """
env: {{id: TextWorld-v0, kwargs: {{preset: easy, max_turns: {turns}, num_tasks: 20}}}}
model: {{name: tiny, vocab_size: 400}}
seeds: [3]
sampling: {{max_new_tokens: 8}}
loss: {{kl_coef: 0.05}}
rl: {{steps: 1, tasks: 1, group_size: 2, parallel_envs: 2}}
eval: {{every: 1, tasks: 2}}
"""


def test_arms_share_each_seeds_warm_up_and_train_as_if_they_ran_it(tmp_path):
    """sft.start_from ({seed} filled in) hands RL what the run's own SFT would have: the same
    evaluation before RL and the same first update; the KL reference is the warmed-up
    model. bench/evidence.py starts an arm once its warm-up exists and skips finished
    runs when run again."""
    own_config, shared_config = tmp_path / "own.yaml", tmp_path / "shared.yaml"
    own_config.write_text(f"output: {tmp_path / 'own'}\n" + WARMED_RUN.format(turns=3)
                          + "sft: {episodes: 4, epochs: 2}\n")
    shared_config.write_text(
        f"output: {tmp_path / 'shared'}\n" + WARMED_RUN.format(turns=3)
        + f"sft: {{episodes: 4, epochs: 2, start_from: '{tmp_path}/own/seed-{{seed}}/"
        "checkpoints/sft'}\n")
    script = Path(__file__).parent.parent / "bench" / "evidence.py"
    experiment = [sys.executable, str(script), str(shared_config), str(own_config)]
    done = subprocess.run(experiment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]  # "shared" waited for "own"'s warm-up
    warm = tmp_path / "own" / "seed-3" / "checkpoints" / "sft"
    own, shared = ([json.loads(line) for line in (tmp_path / name / "seed-3" / "metrics.jsonl")
                    .read_text().splitlines()] for name in ("own", "shared"))
    for key in ("eval/success_rate", "eval/mean_return"):
        assert shared[0][key] == own[0][key]
    for key in ("losses/loss", "losses/kl", "charts/return"):
        assert shared[1][key] == pytest.approx(own[1][key], abs=1e-6), key
    assert "warm-up from" in (tmp_path / "shared" / "seed-3" / "train.log").read_text()
    logs = [(tmp_path / name / "seed-3" / "console.log").read_text() for name in ("own", "shared")]
    again = subprocess.run(experiment, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "finished" in again.stdout  # both skipped, done before
    assert [(tmp_path / name / "seed-3" / "console.log").read_text()
            for name in ("own", "shared")] == logs
    learner, _ = Learner.load(warm)
    for name, weights in learner.model.state_dict().items():
        assert torch.equal(learner.reference.state_dict()[name], weights), name
    from trainers.config import TrainConfig
    from trainers.train import Phases, TrainingError, warmed_up_elsewhere

    config = TrainConfig.model_validate({"env": {"id": "TextWorld-v0"},
                                         "sft": {"start_from": str(tmp_path / "none")}})
    with pytest.raises(TrainingError, match="not a checkpoint folder"):
        warmed_up_elsewhere(config, Phases(None, None, False))


def test_vine_trains_on_continuations_and_a_run_stops_at_its_env_step_budget(tmp_path):
    rows = train_tiny(tmp_path, "vine", """
sampling: {max_new_tokens: 8}
estimator: {type: vine, k: 1}
rl: {steps: 10, tasks: 1, group_size: 2, parallel_envs: 2, env_steps: 40}
eval: {every: 5, tasks: 1}
""")[1:]
    totals = [row["perf/env_steps_total"] for row in rows]
    assert 1 < len(rows) < 10 and totals[-1] >= 40 > totals[-2]  # stopped at the budget
    assert "eval/success_rate" in rows[-1]  # the last update is evaluated and saved
    assert (tmp_path / "vine" / "checkpoints" / f"step-{rows[-1]['step']}").is_dir()
    # the continuations count: more steps than the episodes themselves took
    episodes = agentgym.read_episodes(tmp_path / "vine" / "episodes.jsonl")
    assert all(len(e.metadata["mc_values"]) == e.num_turns + 1 for e in episodes)
    assert totals[-1] > sum(e.num_turns for e in episodes)


def test_updates_without_signal_train_nothing_when_asked_to_skip_them(tmp_path):
    body = """
reward: {type: outcome, channel: success, weight: 0.0}
sampling: {max_new_tokens: 8}
rl: {steps: 2, tasks: 1, group_size: 2, parallel_envs: 2%s}
eval: {every: 5, tasks: 1}
"""
    kept = train_tiny(tmp_path, "kept", body % "")[1:]
    skipped = train_tiny(tmp_path, "skipped", body % ", skip_zero_advantage: true")[1:]
    assert all(row["tokens/trained"] > 0 and row["charts/rows_trained"] == 1 for row in kept)
    assert all(row["tokens/trained"] == 0 and row["charts/rows_trained"] == 0
               for row in skipped)
    config = tmp_path / "kl.yaml"
    config.write_text("rl: {skip_zero_advantage: true}\nloss: {kl_coef: 0.1}\n")
    with pytest.raises(ConfigError, match="kl_coef"):
        load_config(config)


def test_lora_trains_only_the_adapters_and_resumes(world, tmp_path):
    from trainers.learner import LoraConfig

    _, _, randoms, model, tokenizer = world
    fresh = type(model)(model.config)
    fresh.load_state_dict(model.state_dict())
    learner = Learner(fresh, tokenizer, OptimConfig(lr=1e-2, minibatch_size=2),
                      LossConfig(kl_coef=0.1), LoraConfig(r=4, alpha=8))
    trainable = sum(p.numel() for p in learner.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in learner.model.parameters())
    assert 0 < trainable < total / 10
    base_before = {k: v.clone() for k, v in learner.model.get_base_model().state_dict().items()
                   if "lora_" not in k}
    for n, episode in enumerate(randoms):
        episode.outcome.channels["score"] = float(n % 3)
    advantages = GRPO()(Batch.from_episodes(randoms, rewards=Outcome("score")))
    rows = rows_for(randoms, advantages, tokenizer, 2048)
    from trainers.policy_gradient import TokenBatch, token_logprobs

    batch = TokenBatch.from_rows(rows, tokenizer.pad_token_id)
    with torch.no_grad():  # adapters start as the identity: the policy is its reference
        assert torch.equal(token_logprobs(learner.model, batch),
                           learner._reference_logprobs(batch))
    learner.rl_step(rows)
    base_after = learner.model.get_base_model().state_dict()
    assert all(torch.equal(v, base_after[k]) for k, v in base_before.items())
    learner.rl_step(rows)
    learner.save(tmp_path / "ckpt")
    expected = learner.rl_step(rows)
    assert expected["losses/kl"] > 0  # the adapters moved away from the reference
    restored, _ = Learner.load(tmp_path / "ckpt")
    again = restored.rl_step(rows)
    for key in ("losses/loss", "losses/kl", "losses/clipfrac"):
        assert again[key] == pytest.approx(expected[key], abs=1e-6), key
    from trainers.models import load_pretrained

    plain, _ = load_pretrained(tmp_path / "ckpt")  # what agentgym eval loads: merged weights
    assert not any("lora_" in k for k in plain.state_dict())


def test_models_resolve_by_name_from_the_local_hugging_face_cache(world, tmp_path, monkeypatch):
    """``org/name`` loads from the cache's snapshot, with no network; a miss says where."""
    from huggingface_hub import constants

    from trainers.models import load_pretrained, resolve_model

    *_, model, tokenizer = world
    snapshot = tmp_path / "hub" / "models--acme--tiny-chat" / "snapshots" / "0123abcd"
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (tmp_path / "hub" / "models--acme--tiny-chat" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny-chat" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("acme/tiny-chat") == snapshot
    loaded, _ = load_pretrained("acme/tiny-chat")
    assert loaded.config.hidden_size == model.config.hidden_size
    with pytest.raises(agentgym.InvalidOptionError, match=r"Hugging Face cache .*hub.*"
                       r"huggingface-cli download acme/absent"):
        resolve_model("acme/absent")
    config = tmp_path / "config.yaml"
    config.write_text("env: {id: TextWorld-v0}\nmodel: {name: acme/tiny-chat}\n")
    assert load_config(config).model.name == "acme/tiny-chat"


def test_trained_ids_are_the_sampled_ids(world):
    """Token-in/token-out: rollouts record the sampled ids, and tokenisation trains on them,
    even where decoding and re-encoding the text would give other ids."""
    from trainers import tokenize_episode

    env, experts, _, model, tokenizer = world
    policy = TransformersPolicy(model, tokenizer, max_new_tokens=6, seed=3)
    (episode,) = agentgym.rollout([env], policy, tasks=1, progress=False)
    turn = episode.turns[0]
    assert turn.token_ids and len(turn.logprobs) == len(turn.token_ids)
    (row,) = tokenize_episode(episode, tokenizer)
    generated = [i for i, t in zip(row.input_ids, row.turn_ids) if t == 0]
    assert generated[:len(turn.token_ids)] == turn.token_ids

    # ids the tokenizer would never produce for this text: the action spelled byte by byte
    expert = experts[0]
    action = expert.turns[0].action
    spelled = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(ch)[0]) for ch in action
               if tokenizer.tokenize(ch)]
    assert tokenizer.decode(spelled) == action
    reencoded = tokenizer(action, add_special_tokens=False)["input_ids"]
    assert spelled != reencoded  # decoding then re-encoding changes the ids
    expert.turns[0].token_ids = spelled
    (row,) = tokenize_episode(expert, tokenizer)
    generated = [i for i, t in zip(row.input_ids, row.turn_ids) if t == 0]
    assert generated == spelled + tokenizer(tokenizer.eos_token,
                                            add_special_tokens=False)["input_ids"]
    assert agentgym.Episode.from_json(json.dumps(expert.to_dict())).turns[0].token_ids == spelled


def test_windowed_rollouts_train_on_the_context_the_policy_saw(world):
    """The history window a rollout used is recorded, and each reply's row is tokenised
    from exactly the messages the policy was shown."""
    from trainers import TokenizationError, tokenize_episode

    env, _, _, _, tokenizer = world
    shown, expert = [], agentgym.ExpertPolicy()

    def policy(conversation):  # looks around twice, then plays the walkthrough
        shown.append(conversation.messages)
        return conversation.encode("look") if conversation.turn < 2 else expert(conversation)

    (episode,) = agentgym.rollout(env, policy, tasks=1, history_window=1, progress=False)
    assert episode.num_turns >= 3 and episode.history_window == 1
    assert agentgym.Episode.from_json(json.dumps(episode.to_dict())).history_window == 1
    assert len(shown[2]) < len(shown[1]) + 2  # the window did hide the first reply
    rows = tokenize_episode(episode, tokenizer, layout="per_turn")
    assert len(rows) == episode.num_turns
    for turn, (row, messages) in enumerate(zip(rows, shown, strict=True)):
        prompt = [i for i, t in zip(row.input_ids, row.turn_ids, strict=True) if t < 0]
        assert tokenizer.decode(prompt) == tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True)
        assert set(row.turn_ids) == {-1, turn}
    with pytest.raises(TokenizationError, match="history_window=1.*per_turn"):
        tokenize_episode(episode, tokenizer)
    trained = rows_for([episode], None, tokenizer, 4096)  # the trainer picks per-reply rows
    assert [r.input_ids for r in trained] == [r.input_ids for r in rows]

    episode.history_window = None  # the whole history: per-turn prompts are its prefixes
    (whole,) = tokenize_episode(episode, tokenizer)
    for row in tokenize_episode(episode, tokenizer, layout="per_turn"):
        assert whole.input_ids[:len(row)] == row.input_ids


def test_tree_groups_train_each_shared_turn_once_with_the_mean_of_its_leaves(world):
    from trainers.tree_credit import fold_shared_turns

    env, _, _, model, tokenizer = world
    policy = TransformersPolicy(model, tokenizer, max_new_tokens=6, seed=5)
    episodes = agentgym.rollout([env], policy, tasks=2, seed=7, progress=False,
                                tree=agentgym.Tree(leaves=4, width=2, at=(0, 1, 2)))
    stats = agentgym.TreeStats.of(episodes)
    assert stats.tokens_saved > 0 and stats.steps_saved > 0
    for n, episode in enumerate(episodes):
        episode.outcome.channels["score"] = float(n % 3)  # leaves that disagree
    advantages = GRPO()(Batch.from_episodes(episodes, rewards=Outcome("score")))
    folded, first_owned = fold_shared_turns(episodes, advantages)
    shared = 0
    for n, episode in enumerate(episodes):
        for turn in range(first_owned[n], episode.num_turns):  # a turn it owns ...
            through = [m for m, other in enumerate(episodes)
                       if other.group_id == episode.group_id and other.num_turns > turn
                       and _same_path(other, episode, turn + 1)]
            # ... holds the mean advantage of every leaf that took it
            assert folded[n][turn] == pytest.approx(np.mean([advantages[m][turn]
                                                             for m in through]))
            shared += len(through) > 1
        link = episode.metadata["tree"]
        assert first_owned[n] == (link["branch_turn"] if link["parent"] else 0)
    assert shared >= 4
    rows = rows_for(episodes, advantages, tokenizer, 4096)
    trained = sum(sum(row.loss_mask) for row in rows)
    once = sum(len(t.token_ids) + 1 for e, k in zip(episodes, first_owned)
               for t in e.turns[k:])  # each generated turn once: its ids and end-of-turn
    assert trained == once < sum(len(t.token_ids) + 1 for e in episodes for t in e.turns)


def _same_path(a, b, turns):
    return [t.action for t in a.turns[:turns]] == [t.action for t in b.turns[:turns]] and \
        [t.state_key for t in a.turns[:turns]] == [t.state_key for t in b.turns[:turns]]


def test_metrics_go_to_tensorboard_and_an_offline_wandb_run(tmp_path, monkeypatch):
    """Every numeric metric of metrics.jsonl reaches TensorBoard's event files and the
    offline wandb run (config attached), at the same steps, with no network."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_SILENT", "true")
    rows = train_tiny(tmp_path, "logged", "rl: {steps: 2, tasks: 2, group_size: 2}\n"
                      "eval: {every: 2, tasks: 2}\nlogging: [jsonl, tensorboard, wandb]\n"
                      "wandb: {project: agentgym-test}\n")
    run = tmp_path / "logged"
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    logged = {(name, r["step"]): float(v) for r in rows for name, v in r.items()
              if name != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    seen = {(tag, e.step): e.value for tag in events.Tags()["scalars"]
            for e in events.Scalars(tag)}
    assert logged and set(logged) == set(seen)
    assert all(seen[k] == pytest.approx(v, rel=1e-5, abs=1e-6) for k, v in logged.items())
    assert "config/text_summary" in events.Tags()["tensors"]  # the config as text
    offline = list((run / "wandb").glob("wandb/offline-run-*"))
    assert len(offline) == 1
    # the run's records (protobuf, read by `wandb sync`): the config and every metric name
    records = b"".join(f.read_bytes() for f in offline[0].glob("run-*.wandb"))
    assert str(run).encode() in records and b"tensorboard" in records  # the config
    assert all(name.encode() in records for name, _ in logged)


def test_a_run_over_two_envs_samples_by_weight_and_reports_each(tmp_path):
    """env: [TextWorld, Search] with weights: groups never mix envs, every update's tasks
    are split by a weighted draw, metrics and evaluation are reported per env."""
    rows = train_tiny(tmp_path, "mixed", """
env:
  - {id: TextWorld-v0, kwargs: {preset: easy, max_turns: 3, num_tasks: 20}, weight: 0.5}
  - {id: Search-v0, kwargs: {max_turns: 3}, weight: 0.5, name: search}
rl: {steps: 2, tasks: 4, group_size: 2}
eval: {every: 2, tasks: 2}
sft: {episodes: 4, epochs: 1}
model: {name: tiny, vocab_size: 400}
""", base="")
    updates = [r for r in rows if r["step"] > 0]
    assert len(updates) == 2
    for row in updates:
        assert row["env/TextWorld-v0/episodes"] + row["env/search/episodes"] == 4 * 2
    assert {"eval/TextWorld-v0/success_rate", "eval/search/success_rate",
            "eval/success_rate"} <= set(rows[0]) and "eval/search/success_rate" in rows[-1]
    episodes = [json.loads(line) for line in
                (tmp_path / "mixed" / "episodes.jsonl").read_text().splitlines()]
    by_group: dict[str, set] = {}
    for episode in episodes:
        by_group.setdefault(episode["group_id"], set()).add(episode["env_id"])
    assert all(len(envs) == 1 for envs in by_group.values())  # groups never mix envs
    assert {e["env_id"] for e in episodes} <= {"TextWorld-v0", "Search-v0"}
    played = sum(r["env/TextWorld-v0/episodes"] for r in updates)
    assert played == sum(e["env_id"] == "TextWorld-v0" for e in episodes)


def test_a_long_phase_leaves_its_progress_in_the_log(tmp_path):
    """Background runs show no bar: the log gets a progress line per LOG_EVERY seconds."""
    from rich.console import Console

    from trainers.train import Phases

    phases = Phases(Console(file=open(tmp_path / "console", "w")), tmp_path / "train.log", False)
    phases.LOG_EVERY = 0.0
    with phases.bar("SFT epochs", 3) as advance:
        for epoch in range(3):
            advance(f"loss {1 / (epoch + 1):.3f}")
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in lines[:3]] == [
        "  SFT epochs: 1/3  loss 1.000", "  SFT epochs: 2/3  loss 0.500",
        "  SFT epochs: 3/3  loss 0.333"]
    assert "SFT epochs: 3 in" in lines[3]
    assert "1/3" not in (tmp_path / "console").read_text()  # the bar shows it, not a line
