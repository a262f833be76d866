"""SWE-RL's patch-similarity reward (arXiv 2502.18449; reference ``swerl/core/reward.py``).

A channel function for the SWE env: the model answers with ``<think>…</think><solution>…
</solution>``, the solution holding SEARCH/REPLACE edits; the reward is how similar the
resulting unified diff is to the oracle's, file by file::

    format violation (tags, empty thought, no edit, a search block not in its file,
                      search == replace)                       -> -1
    R = mean over files in pred ∪ oracle of SequenceMatcher(pred_patch_f, oracle_patch_f).ratio()
        (a file missing on one side scores 0; both patch sets empty -> 1)
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from agentgym.errors import AgentGymError

_EDIT = re.compile(
    r"```[^\n]*\n### (?P<path>[^\n]+)\n<<<<<<< SEARCH\n(?P<search>.*?)\n?=======\n"
    r"(?P<replace>.*?)\n?>>>>>>> REPLACE\n```",
    re.DOTALL,
)


@dataclass(frozen=True)
class Edit:
    """One SEARCH/REPLACE edit of one file."""

    path: str
    search: str
    replace: str


class FormatViolation(AgentGymError, ValueError):
    """The response breaks SWE-RL's output format; the message says how."""


def parse_edits(response: str, files: dict[str, str]) -> list[Edit]:
    """The response's edits, checked against SWE-RL's format rules.

    Raises:
        FormatViolation: naming the broken rule.
    """
    for tag in ("<think>", "</think>", "<solution>", "</solution>"):
        if response.count(tag) != 1:
            raise FormatViolation(f"{tag} must appear exactly once.")
    thought = response.split("<think>", 1)[1].split("</think>", 1)[0]
    if not thought.strip():
        raise FormatViolation("the thought is empty.")
    solution = response.split("<solution>", 1)[1].split("</solution>", 1)[0]
    edits = [Edit(m["path"].strip(), m["search"], m["replace"]) for m in _EDIT.finditer(solution)]
    if not edits:
        raise FormatViolation("no SEARCH/REPLACE block found.")
    for edit in edits:
        if edit.search == edit.replace:
            raise FormatViolation(f"an edit of {edit.path} replaces text with itself.")
        if "\n" + edit.search not in "\n" + files.get(edit.path, "\x00"):
            raise FormatViolation(f"a search block is not in {edit.path}.")
    return edits


def apply_edits(files: dict[str, str], edits: list[Edit]) -> dict[str, str]:
    """The new contents of every file the edits touch (first match replaced, in order)."""
    new: dict[str, str] = {}
    for edit in edits:
        text = "\n" + new.get(edit.path, files[edit.path])
        new[edit.path] = text.replace("\n" + edit.search, "\n" + edit.replace, 1)[1:]
    return new


def unified_patch(old: str, new: str) -> str:
    """``difflib.unified_diff`` with 3 context lines, without its two header lines."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), n=3, lineterm="")
    return "\n".join(list(lines)[2:])


def patch_similarity(pred: dict[str, str], oracle: dict[str, str]) -> float:
    """Mean per-file ``SequenceMatcher`` ratio of two sets of patches (path -> patch)."""
    paths = sorted(set(pred) | set(oracle))
    if not paths:
        return 1.0
    scores = []
    for path in paths:
        a, b = pred.get(path, ""), oracle.get(path, "")
        scores.append(0.0 if not a or not b else
                      difflib.SequenceMatcher(None, a, b, autojunk=False).ratio())
    return sum(scores) / len(scores)


def swe_rl_reward(response: str, files: dict[str, str], oracle_new: dict[str, str]) -> float:
    """SWE-RL's reward of one response.

    Args:
        response: The model's ``<think>…</think><solution>…</solution>`` text.
        files: The original contents of the repository's files (path -> text).
        oracle_new: The oracle's new contents of the files it changes.
    """
    try:
        edits = parse_edits(response, files)
    except FormatViolation:
        return -1.0
    pred_new = apply_edits(files, edits)
    pred = {p: unified_patch(files[p], text) for p, text in pred_new.items()}
    oracle = {p: unified_patch(files.get(p, ""), text) for p, text in oracle_new.items()}
    return patch_similarity(pred, oracle)
