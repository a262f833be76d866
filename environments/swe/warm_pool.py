"""Started, idle things kept ready, refilled in the background: the docker sandbox's containers.

A reset that takes a ready container skips the engine's start-up (about 150 ms on these
machines); the pool starts the next one while the episode runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WarmPool(Generic[T]):
    """Up to ``size`` ready items made by ``make``; ``discard`` frees one.

    Refills start ``delay`` seconds after a ``take``, so they do not compete with the work
    the taken item is for.

    ``take()`` returns a ready item, or ``None`` when there is none yet (the caller makes
    its own), and wakes the refill thread. If ``make`` fails, the pool stays empty until
    the next ``take`` and the error is kept in ``self.problem``.
    """

    def __init__(self, make: Callable[[], T], discard: Callable[[T], None], size: int,
                 delay: float = 0.0) -> None:
        self.make, self.discard, self.size, self.delay = make, discard, size, delay
        self.problem = ""
        self._ready: deque[T] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WarmPool(size={self.size}, ready={self.ready})"

    @property
    def ready(self) -> int:
        """How many items wait to be taken."""
        return len(self._ready)

    def take(self) -> T | None:
        """A ready item, or ``None``; either way the pool refills behind it."""
        with self._lock:
            item = self._ready.popleft() if self._ready else None
            if self._thread is None and self.size > 0:
                self._thread = threading.Thread(target=self._refill, daemon=True,
                                                name="agentgym-warm-pool")
                self._thread.start()
        self._wake.set()
        return item

    def close(self) -> None:
        """Stop refilling and discard every ready item."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        while self._ready:
            self.discard(self._ready.popleft())

    def _refill(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.delay)  # the taker's work (a reset) goes first
            while not self._closed and len(self._ready) < self.size:
                try:
                    item = self.make()
                except Exception as exc:  # kept for the caller; the next take() retries
                    self.problem = f"{type(exc).__name__}: {exc}"
                    break
                self.problem = ""
                with self._lock:
                    if self._closed:
                        self.discard(item)
                        return
                    self._ready.append(item)
