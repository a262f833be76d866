import subprocess
import sys

import gymnasium
import pytest

import agentgym
from agentgym.errors import UnknownEnvError
from agentgym.registry import EnvSpec


def test_unknown_id_lists_known_ids_and_suggests_the_closest():
    with pytest.raises(UnknownEnvError) as caught:
        agentgym.make("TextWorld-v1")
    message = str(caught.value)
    known = message.partition("Known ids: ")[2].partition(".")[0].split(", ")
    assert known == sorted(known)
    assert {"ALFWorld-v0", "SWE-v0", "Search-v0", "TextWorld-v0", "WebShop-v0"} <= set(known)
    assert "Did you mean `TextWorld-v0`?" in message
    assert isinstance(caught.value, KeyError)  # still catchable the dict way


def test_list_envs_has_descriptions():
    envs = agentgym.list_envs()
    assert "TextWorld-v0" in envs and "TextWorld" in envs["TextWorld-v0"]


def test_gymnasium_ids_and_agentgym_ids_build_the_same_env():
    a = agentgym.make("TextWorld-v0", preset="easy")
    b = gymnasium.make("agentgym/TextWorld-v0", preset="easy")
    assert a.reset(seed=5) == b.reset(seed=5)
    a.close()
    b.close()


def test_register_a_custom_env():
    agentgym.register(EnvSpec("EasyWorld-v0", "environments.textworld:TextWorldEnv",
                              "TextWorld on easy", {"preset": "easy"}))
    with agentgym.make("EasyWorld-v0") as env:
        assert env.spec_knobs.name == "easy"
    assert "EasyWorld-v0" in agentgym.list_envs()


def test_import_agentgym_stays_light():
    heavy = ["torch", "transformers", "textworld", "docker", "ray", "vllm", "environments"]
    code = ("import sys, agentgym; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
