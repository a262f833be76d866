"""A real TextWorld env with injected faults, for the pool's failure tests.

``<action>crash</action>`` kills the worker process; ``<action>hang</action>`` never returns.
Everything else is the real TextWorld engine.
"""

from __future__ import annotations

import os
import time

from environments.textworld import TextWorldEnv


class FaultyTextWorld(TextWorldEnv):
    def _apply(self, command):
        if command == "crash":
            os._exit(3)
        if command == "hang":
            time.sleep(3600)
        return super()._apply(command)


def make_faulty(**kwargs):
    return FaultyTextWorld(**kwargs)
