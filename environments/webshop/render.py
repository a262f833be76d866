"""How the replay viewer shows a WebShop page.

One element per line, chosen options in green, the target product in yellow; registered as
``WebShop-v0``'s renderer (``EnvSpec.renderer``).
"""

from __future__ import annotations

from typing import Any


def observation(text: str, reference: dict[str, Any]) -> Any:
    """The page one element per line, chosen options and the target product marked."""
    from rich.text import Text

    target = str(reference.get("asin", "")).upper()
    out = Text()
    for part in text.split(" [SEP] ") if " [SEP] " in text else text.splitlines():
        style = ("bold green" if "(selected)" in part
                 else "bold yellow" if target and part.strip().upper() == target else "")
        out.append(part + "\n", style=style)
    return out
