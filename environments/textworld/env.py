"""``TextWorld-v0``: generated text adventures on the real TextWorld engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agentgym.core import AgentEnv, Transition
from agentgym.errors import InvalidOptionError, MissingDependencyError, TaskNotFoundError
from agentgym.protocols import ActionProtocol, ProtocolName, command_protocol
from environments.textworld.engine import (
    clean_feedback,
    load_saved_state,
    request_infos,
    saved_state,
    start_engine,
    state_fingerprint,
)
from environments.textworld.games import SPLITS, GameSpec, ensure_game, game_seed
from environments.textworld.games import preset as preset_named

# Inform's out-of-world verbs: `save` and `script` write files into the worker's directory,
# `restore` loads a save another episode wrote, `restart`/`quit` put the game back at its start
# mid-episode. None of them is a move in the world, so the agent never needs one.
SESSION_VERBS = frozenset({"save", "restore", "restart", "quit", "q", "undo", "script",
                           "transcript", "unscript", "noscript"})
# the games' dictionaries keep 9 letters of a word, so 'transcriptxyz' is 'transcript'
_DICT_WORD = 9
_SESSION_WORDS = {verb[:_DICT_WORD]: verb for verb in SESSION_VERBS}
_CLAUSE_BREAK = re.compile(r"[.,;:!?]|\b(?:then|and)\b")


def _clause_verbs(command: str) -> list[str]:
    """The first word of each clause ('look. save' and 'look then save' are two commands)."""
    clauses = (clause.split() for clause in _CLAUSE_BREAK.split(command.lower()))
    return [words[0] for words in clauses if words]


class TextWorldEnv(AgentEnv):
    """TextWorld text adventures, generated offline with TextWorld's own generator.

    Tasks are numbered per split; task ``i`` of ``train`` and of ``test`` are built from
    disjoint seeds. ``reset(seed=s)`` plays task ``s % num_tasks`` of the split, so the same
    seed is the same game. ``games=[...]`` plays your own ``.z8``/``.ulx`` files instead.

    Channels: turn ``progress`` (score gained this turn, the env's reward) and ``format``;
    outcome ``success`` (won), ``lost`` and ``score`` (final score / max score).

    Args:
        preset: ``"easy"``, ``"medium"``, ``"hard"`` or ``"cooking"`` (see ``games.PRESETS``),
            or a :class:`GameSpec` with your own knobs.
        games: Paths of game files to play instead of generated games.
        split: The default split (``reset(options={"split": ...})`` overrides it).
        num_tasks: Tasks per split that seeds map onto.
        protocol: ``"tags"``, ``"tags-lenient"``, ``"tools"`` or an ActionProtocol.
        max_turns: Truncate after this many turns.
        max_invalid_actions: Truncate after this many consecutive invalid actions.
        cache_dir: Where generated games are kept (default ``$AGENTGYM_CACHE/textworld``).
        show_admissible: Append the admissible commands to every observation (the
            "available actions" prompt style of many ALFWorld/TextWorld agents).
        render_mode: ``None`` or ``"ansi"``.
    """

    env_id = "TextWorld-v0"
    snapshot_kind = "native"
    native_snapshot_portable = False  # the engine's layers hold the loaded game
    description = (
        "You are playing a text adventure. Read each observation, then act with short "
        "imperative commands such as 'go north', 'take key', 'open box', 'unlock door with key' "
        "or 'put apple on table'. Complete the task you are given."
    )
    turn_channels = ("progress", "format")
    reward_channels = ("progress",)
    outcome_channels = ("success", "lost", "score")

    def __init__(
        self,
        preset: str | GameSpec = "easy",
        *,
        games: list[str | Path] | None = None,
        split: str = "train",
        num_tasks: int = 1000,
        protocol: ProtocolName | ActionProtocol = "tags",
        max_turns: int | None = 50,
        max_invalid_actions: int | None = None,
        cache_dir: str | Path | None = None,
        show_admissible: bool = False,
        render_mode: str | None = None,
    ) -> None:
        try:
            import textworld  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("textworld", "textworld") from exc
        super().__init__(protocol=command_protocol(protocol), max_turns=max_turns,
                         max_invalid_actions=max_invalid_actions, render_mode=render_mode)
        self.spec_knobs = preset if isinstance(preset, GameSpec) else preset_named(preset)
        self.games = [Path(g) for g in games] if games else None
        self._check_games()
        self.split = self.check_split(split)
        if num_tasks < 1:
            raise InvalidOptionError(f"num_tasks must be >= 1, got {num_tasks}.")
        self.num_tasks = num_tasks
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.show_admissible = show_admissible
        self._engine: Any = None
        self._engine_path: Path | None = None
        self._gs: Any = None

    # ------------------------------------------------------------------ tasks
    def _check_games(self) -> None:
        for game in self.games or []:
            if not game.exists() or game.suffix not in (".z8", ".ulx"):
                raise InvalidOptionError(
                    f"Game file {str(game)!r} does not exist or is not a .z8/.ulx file."
                )

    def task_ids(self, split: str | None = None, count: int = 10) -> list[str]:
        """The first ``count`` task ids of a split (or the game files, when given)."""
        if self.games:
            return [str(g) for g in self.games[:count]]
        split = self.check_split(split or self.split)
        return [f"{self.spec_knobs.name}/{split}/{i}" for i in range(min(count, self.num_tasks))]

    def _game_for(self, options: dict[str, Any]) -> tuple[Path, str]:
        if "task_id" in options:
            return self._game_for_task_id(str(options["task_id"]))
        split = self.check_split(options.get("split", self.split))
        index = self.task_index(len(self.games) if self.games else self.num_tasks)
        if self.games:
            return self.games[index], str(self.games[index])
        task_id = f"{self.spec_knobs.name}/{split}/{index}"
        return ensure_game(self.spec_knobs, game_seed(split, index), self.cache_dir), task_id

    def _game_for_task_id(self, task_id: str) -> tuple[Path, str]:
        if self.games:
            for game in self.games:
                if task_id == str(game):
                    return game, task_id
            known = [str(g) for g in self.games]
            raise TaskNotFoundError(f"No game file {task_id!r}; games: {known}.")
        name, _, rest = task_id.partition("/")
        split, _, index = rest.partition("/")
        if name != self.spec_knobs.name or split not in SPLITS or not index.isdigit():
            raise TaskNotFoundError(
                f"Task id {task_id!r} is not a task of this env; ids look like "
                f"'{self.spec_knobs.name}/train/0' (preset/split/index)."
            )
        seed = game_seed(split, int(index))
        return ensure_game(self.spec_knobs, seed, self.cache_dir), task_id

    # ------------------------------------------------------------------ hooks
    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        path, task_id = self._game_for(options)
        if path != self._engine_path:
            self._release()
            self._engine = start_engine(path, request_infos())
            self._engine_path = path
        self._gs = self._engine.reset()
        return self._observation(), task_id

    def _observation(self) -> str:
        text = clean_feedback(self._gs.feedback)
        if self.show_admissible and self._gs["admissible_commands"]:
            text += "\n\nAdmissible commands: " + ", ".join(self._gs["admissible_commands"])
        return text

    def _refuse(self, command: Any) -> str | None:
        # the Z-machine interpreter inside the engine reads a leading backslash as one of its
        # own meta-commands (some never return, some print without end), and it only takes
        # plain ASCII text
        if "\\" in command:
            return ("a backslash starts an interpreter meta-command, which the game does not "
                    "take; write plain words such as 'open door'.")
        if not command.isascii() or not command.isprintable():
            return ("game commands are plain ASCII words (letters, digits, spaces and "
                    "punctuation), such as 'take key'.")
        session_verb = next((_SESSION_WORDS[word[:_DICT_WORD]] for word in _clause_verbs(command)
                             if word[:_DICT_WORD] in _SESSION_WORDS), None)
        if session_verb:
            return (f"{session_verb!r} acts on the play session, not the world (it would "
                    f"write files, reload or restart the game); the game does not take "
                    f"{', '.join(sorted(SESSION_VERBS))}. Write game commands such as "
                    "'open door'.")
        return None

    def _abandon(self) -> None:
        self._engine, self._engine_path = None, None

    def _apply(self, command: Any) -> Transition:
        before = self._gs["score"]
        self._gs, _, done = self._engine.step(command)
        return Transition(
            observation=self._observation(),
            channels={"progress": float(self._gs["score"] - before)},
            terminated=bool(done),
        )

    def _snapshot(self) -> tuple:
        assert self._engine_path is not None
        return self._engine_path, saved_state(self._engine), self._gs

    def _restore(self, native: tuple) -> None:
        path, saved, self._gs = native
        if path != self._engine_path or self._engine is None:
            self._release()
            self._engine = start_engine(path, request_infos())
            self._engine_path = path
            self._engine.reset()
        load_saved_state(self._engine, saved)

    def _task_source(self) -> Path | None:
        return self._engine_path  # the game file

    def _task_kind(self) -> str | None:
        return self.spec_knobs.name  # the preset

    def _instruction(self) -> str:
        return self._gs["objective"]

    def _state_key(self) -> str:
        return state_fingerprint(self._gs["facts"])

    def _outcome(self) -> dict[str, float]:
        max_score = self._gs["max_score"] or 1
        return {"success": float(bool(self._gs["won"])), "lost": float(bool(self._gs["lost"])),
                "score": self._gs["score"] / max_score}

    def _admissible(self) -> list[str]:
        return list(self._gs["admissible_commands"] or [])

    def _expert(self) -> str | None:
        plan = self._gs["policy_commands"]
        return plan[0] if plan else None

    def _release(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine, self._engine_path = None, None
