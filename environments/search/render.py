"""How the replay viewer shows a Search observation.

One line per retrieved document, the gold answers highlighted; registered as ``Search-v0``'s
renderer (``EnvSpec.renderer``).
"""

from __future__ import annotations

import re
from typing import Any

LINE_CHARS = 160


def observation(text: str, reference: dict[str, Any]) -> Any:
    """The retrieved documents one line each (cyan), gold answers highlighted."""
    from rich.text import Text

    block = re.search(r"<information>(.*)</information>", text, re.DOTALL)
    if not block:
        return Text(text)
    out = Text()
    for doc in re.split(r"\n(?=Doc \d+\()", block.group(1).strip()):
        line = doc if len(doc) <= LINE_CHARS else doc[:LINE_CHARS - 3] + "..."
        out.append(line + "\n", style="cyan")
    for answer in reference.get("answers", []):
        out.highlight_words([answer], style="bold black on yellow", case_sensitive=False)
    return out
