"""SALT and GiGPO as verl advantage estimators (``algorithm.adv_estimator=agentgym_salt``).

verl picks an estimator by name from its registry (``verl.trainer.ppo.core_algos``).
Importing this module registers ``agentgym_salt`` and ``agentgym_gigpo`` there. They take
a batch in either of the two layouts multi-turn verl trainers use.

**A row per episode** (verl's agent loops, :mod:`trainers.verl_agent_loop`): the row's
non-tensor field ``agentgym_turns`` lists its turns, each with its token span in the response
(``start``, ``end``), its ``reward``, ``state_key``, ``next_state_key`` and ``action``; ``uid``
is the group. Each turn's advantage covers its span's model tokens.

**A row per turn**, as in verl-agent, with the step anchors in these non-tensor fields:

==================  =====================================================================
``uid``             the group (one task's episodes), as in every verl estimator (``index``)
``traj_uid``        the episode the row belongs to
``step``            the turn's index in its episode (optional: rows in order otherwise)
``state_key``       the state before the turn (``anchor_obs``, verl-agent's name, works too)
``next_state_key``  the state after it (SALT's edges; optional for GiGPO)
``action``          the parsed action (``None`` or missing: an invalid action)
==================  =====================================================================

A turn's reward is the sum of its row's ``token_level_rewards``; each row's advantage is
spread over its response tokens.

Either way the rows become agentgym episodes given to :class:`trainers.SALT` /
:class:`trainers.GiGPO`, so the advantages are exactly agentgym's.

verl's own ``compute_advantage`` passes ``non_tensor_batch`` to GDPO only; a multi-turn
trainer (verl-agent's, or yours) passes it to these, as verl-agent does for GiGPO.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from agentgym.errors import EstimatorError, MissingDependencyError
from agentgym.records import Episode, Outcome, Turn
from trainers.batch import Batch
from trainers.gigpo import GiGPO
from trainers.salt import SALT

try:
    from verl.trainer.ppo.core_algos import register_adv_est
except ImportError as exc:  # pragma: no cover - the message names the extra
    raise MissingDependencyError("verl", "verl", hint="See the README's verl section.") from exc


def episodes_of_rows(non_tensor_batch: dict[str, Any], rewards: np.ndarray
                     ) -> tuple[list[Episode], list[list[int]]]:
    """The episodes the rows make, and for each episode its rows in turn order."""
    fields = non_tensor_batch
    for name in ("uid", "traj_uid"):
        if name not in fields:
            raise EstimatorError(f"agentgym's verl estimators need the non-tensor field "
                                 f"{name!r} (see trainers.verl_estimators).")
    states = fields.get("state_key", fields.get("anchor_obs"))
    if states is None:
        raise EstimatorError("agentgym's verl estimators need 'state_key' (or verl-agent's "
                             "'anchor_obs') in the non-tensor batch.")
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, episode_id in enumerate(fields["traj_uid"]):
        rows_of[str(episode_id)].append(row)
    steps = fields.get("step")
    episodes, orders = [], []
    for episode_id, rows in rows_of.items():
        rows = sorted(rows, key=lambda r: int(steps[r])) if steps is not None else rows
        episodes.append(_episode(episode_id, rows, fields, states, rewards))
        orders.append(rows)
    return episodes, orders


def _episode(episode_id: str, rows: list[int], fields: dict[str, Any], states: Any,
             rewards: np.ndarray) -> Episode:
    actions = fields.get("action")
    after = fields.get("next_state_key")
    turns = []
    for t, row in enumerate(rows):
        nxt = after[row] if after is not None else \
            (states[rows[t + 1]] if t + 1 < len(rows) else f"{states[row]}/end")
        action = actions[row] if actions is not None else f"step{t}"
        turns.append(Turn(index=t, observation=str(states[row]), action=str(action),
                          parsed_action=None if action is None else str(action),
                          reward=float(rewards[row]), state_key=str(states[row]),
                          next_state_key=str(nxt)))
    group = str(fields["uid"][rows[0]])
    return Episode(env_id="verl", task_id=group, group_id=group, episode_id=episode_id,
                   turns=turns, outcome=Outcome(total_reward=float(rewards[rows].sum())))


TURNS = "agentgym_turns"
"""The non-tensor field of a row-per-episode batch (see :mod:`trainers.verl_agent_loop`)."""


def episodes_of_trajectories(non_tensor_batch: dict[str, Any]) -> list[Episode]:
    """One episode per row of a row-per-episode batch."""
    if "uid" not in non_tensor_batch:
        raise EstimatorError("agentgym's verl estimators need the non-tensor field 'uid' "
                             "(the group) next to 'agentgym_turns'.")
    episodes = []
    for row, (group, turns) in enumerate(zip(non_tensor_batch["uid"],
                                             non_tensor_batch[TURNS])):
        episodes.append(Episode(
            env_id="verl", task_id=str(group), group_id=str(group), episode_id=f"row{row}",
            turns=[Turn(index=t, observation=str(turn["state_key"]),
                        action=str(turn["action"]), parsed_action=turn["action"],
                        reward=float(turn["reward"]), state_key=str(turn["state_key"]),
                        next_state_key=str(turn["next_state_key"]))
                   for t, turn in enumerate(turns or [])],
            outcome=Outcome(total_reward=float(sum(t["reward"] for t in turns or [])))))
    return episodes


def trajectory_advantages(estimator: Any, response_mask: Any,
                          non_tensor_batch: dict[str, Any]) -> tuple[Any, Any]:
    """``estimator``'s per-turn advantages over each turn's span, a row per episode."""
    import torch

    episodes = episodes_of_trajectories(non_tensor_batch)
    per_turn = estimator(Batch.from_episodes(episodes))
    values = torch.zeros_like(response_mask, dtype=torch.float32)
    for row, (turns, advantages) in enumerate(zip(non_tensor_batch[TURNS], per_turn)):
        for turn, advantage in zip(turns or [], advantages):
            values[row, int(turn["start"]):int(turn["end"])] = float(advantage)
    spread = values * response_mask
    return spread, spread


def row_advantages(estimator: Any, token_level_rewards: Any, response_mask: Any,
                   non_tensor_batch: dict[str, Any]) -> tuple[Any, Any]:
    """``estimator``'s per-turn advantages as verl's ``(advantages, returns)`` tensors."""
    import torch

    if TURNS in non_tensor_batch:
        return trajectory_advantages(estimator, response_mask, non_tensor_batch)
    rewards = token_level_rewards.sum(dim=-1).detach().cpu().numpy().astype(np.float64)
    episodes, orders = episodes_of_rows(non_tensor_batch, rewards)
    per_turn = estimator(Batch.from_episodes(episodes))
    values = np.zeros(len(rewards))
    for rows, advantages in zip(orders, per_turn):
        values[rows] = advantages
    spread = torch.tensor(values, dtype=token_level_rewards.dtype,
                          device=token_level_rewards.device)[:, None] * response_mask
    return spread, spread


@register_adv_est("agentgym_salt")
def compute_agentgym_salt_advantage(token_level_rewards: Any, response_mask: Any,
                                    non_tensor_batch: dict[str, Any] | None = None,
                                    config: Any = None, **_: Any) -> tuple[Any, Any]:
    """SALT over GRPO (agentgym's defaults) on a batch of turn rows."""
    return row_advantages(SALT(), token_level_rewards, response_mask,
                          _needed(non_tensor_batch))


@register_adv_est("agentgym_gigpo")
def compute_agentgym_gigpo_advantage(token_level_rewards: Any, response_mask: Any,
                                     non_tensor_batch: dict[str, Any] | None = None,
                                     config: Any = None, **_: Any) -> tuple[Any, Any]:
    """GiGPO (agentgym's defaults; ``config.gigpo`` may set its fields) on turn rows."""
    settings = dict(getattr(config, "gigpo", None) or {}) if config is not None else {}
    return row_advantages(GiGPO(**settings), token_level_rewards, response_mask,
                          _needed(non_tensor_batch))


def _needed(non_tensor_batch: dict[str, Any] | None) -> dict[str, Any]:
    if non_tensor_batch is None:
        raise EstimatorError("agentgym_salt and agentgym_gigpo read step anchors from "
                             "non_tensor_batch: pass adv_kwargs['non_tensor_batch'] = "
                             "data.non_tensor_batch (as verl-agent does for GiGPO).")
    return non_tensor_batch
