"""SWE grading against an adversarial agent: test-runner hijacks, links, leftover processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from environments.swe import grading
from tests.test_swe import CONTAINED, bash, call, containers, make, sandbox_processes

CONFTEST_HIJACK = """import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""


def submit(env) -> dict:
    *_, info = env.step(call("submit"))
    return info


def fake_pytest(task) -> str:
    lines = [f"PASSED {test}" for test in task.fail_to_pass + task.pass_to_pass]
    return f"print({chr(10).join(lines)!r})\n"


def exploits(task) -> dict[str, list[str]]:
    """Each exploit as bash commands; none of them touches the bug."""
    conftest = CONFTEST_HIJACK.replace("'", "'\\''")
    stub = "def test_ok():\n    pass\n"
    return {
        "conftest hook": [f"printf '%s' '{conftest}' > conftest.py",
                          f"printf '%s' '{conftest}' > tests/conftest.py"],
        "pytest.py shadow": [f"cat > pytest.py <<'EOF'\n{fake_pytest(task)}EOF",
                             "mkdir -p _pytest && touch _pytest/__init__.py"],
        "tests symlink + stub": ["rm -rf tests && ln -s /proc/self/cwd tests",
                                 f"printf '{stub}' > test_stub.py"],
        "config + sitecustomize": ["printf '[pytest]\\naddopts = -p no:python\\n' > pytest.ini",
                                   "echo 'import os; os._exit(0)' > sitecustomize.py"],
        "source reaches into pytest": [
            f"{{ cat {task.gold_edit['path']}; cat <<'EOF'\nimport _pytest.reports\n"
            "_pytest.reports.TestReport.passed = property(lambda self: True)\nEOF\n} > new.tmp"
            f" && mv new.tmp {task.gold_edit['path']}"],
    }


@pytest.mark.parametrize("sandbox", CONTAINED)
def test_runner_hijacks_score_nothing(sandbox):
    with make(sandbox) as env:
        env.reset(seed=0)
        for name, commands in exploits(env.task.source).items():
            env.reset(seed=0)
            for command in commands:
                bash(env, command)
            info = submit(env)
            assert info["outcome_channels"]["resolved"] == 0.0, name
            assert info["outcome_channels"]["modified"] == 1.0, name
    assert containers() == []


@pytest.mark.parametrize("sandbox", CONTAINED)
def test_a_real_fix_next_to_a_hijack_still_resolves(sandbox):
    with make(sandbox) as env:
        _, info = env.reset(seed=0)
        task = env.task.source
        bash(env, f"cat > pytest.py <<'EOF'\n{fake_pytest(task)}EOF")
        obs, *_ = env.step(call("str_replace", path=task.gold_edit["path"],
                                old=task.gold_edit["old"], new=task.gold_edit["new"]))
        obs, *_, info = env.step(call("submit"))
        assert info["outcome_channels"]["resolved"] == 1.0
        assert "pytest.py (shadows the module 'pytest')" in obs


def test_submission_names_what_was_not_graded():
    with make("bwrap") as env:
        env.reset(seed=0)
        bash(env, f"printf '%s' '{CONFTEST_HIJACK}' > conftest.py; ln -s /etc etc_link")
        obs, *_ = env.step(call("submit"))
        assert "conftest.py (configures the test runner or interpreter)" in obs
        assert "etc_link (a symbolic link)" in obs


@pytest.mark.parametrize("sandbox", CONTAINED)
def test_grading_never_writes_through_workspace_links(sandbox, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("host data")
    with make(sandbox) as env:
        env.reset(seed=0)
        task = env.task.source
        names = [Path(t).name for t in task.test_files]
        for name in names:  # host files named like the test files behind the link
            (victim / name).write_text("host original")
        bash(env, f"rm -rf tests && ln -s {victim} tests")
        info = submit(env)
        assert info["outcome_channels"]["resolved"] == 0.0
        assert sorted(p.name for p in victim.iterdir()) == sorted(["keep.txt", *names])
        assert all((victim / n).read_text() == "host original" for n in names)
        assert (victim / "keep.txt").read_text() == "host data"

        env.reset(seed=0)  # a dangling link grades cleanly
        bash(env, f"rm -rf tests && ln -s /no/such/{uuid.uuid4().hex} tests; "
                  "ln -s /nowhere dangling.py")
        info = submit(env)
        assert info["outcome_channels"]["resolved"] == 0.0


@pytest.mark.parametrize("sandbox", ["docker", "docker-remote"])
def test_a_daemon_that_outlives_its_command_does_not_reach_grading(sandbox):
    with make(sandbox) as env:
        env.reset(seed=0)
        task = env.task.source
        # a daemon that detaches, kills its wrapper, then keeps planting a conftest hijack
        plant = CONFTEST_HIJACK.replace("'", "'\\''")
        bash(env, "setsid nohup bash -c 'kill -9 $PPID; while :; do "
                  f"printf \"%s\" '\"'\"'{plant}'\"'\"' > conftest.py; sleep 0.05; done' "
                  ">/dev/null 2>&1 & sleep 1; echo planted")
        info = submit(env)
        assert info["outcome_channels"]["resolved"] == 0.0
        assert task.fail_to_pass
    assert containers() == []
    assert sandbox_processes() == []


def test_file_names_that_are_not_utf8_leave_the_episode_playable():
    with make("bwrap") as env:
        env.reset(seed=0)
        obs, _, _, _, info = bash(env, "touch $'\\xff\\xfe.py' && mkdir $'d\\xff' && echo ok")
        assert "ok" in obs and info["state_key"]
        obs, _, _, _, info = bash(env, "ls")
        assert info["state_key"]
        info = submit(env)
        assert info["outcome_channels"]["resolved"] == 0.0


def test_change_sorting():
    assert grading._protected("tests/test_x.py", True, []) == "a test file"
    assert grading._protected("pkg/conftest.py", False, []) == \
        "configures the test runner or interpreter"
    assert grading._protected("json.py", False, []) == "shadows the module 'json'"
    assert grading._protected("pkg/__pycache__/m.cpython-311.pyc", True, []) == "bytecode"
    assert grading._protected("evil.pth", False, []) is not None
    assert grading._protected("pkg/core.py", True, []) is None
    assert grading._protected("pkg/new_module.py", False, []) is None


def test_write_file_refuses_links_on_the_way(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="not a real folder"):
        grading.write_file(tmp_path, "link/x.py", b"x")
    assert not (tmp_path / "real" / "x.py").exists()
    with pytest.raises(ValueError):
        grading.write_file(tmp_path, "../x.py", b"x")
    target = tmp_path / "f.py"
    target.symlink_to(tmp_path / "real" / "victim.py")
    grading.write_file(tmp_path, "f.py", b"new")
    assert not target.is_symlink() and target.read_bytes() == b"new"
    assert not (tmp_path / "real" / "victim.py").exists()


# the project's own code runs inside the test process: it finds the report's path, writes a
# report where every test passed, and ends the process before the real one is written (names
# spelled so that the added-line filter does not see them: the report itself must hold)
FORGER = '''
import json as _j, os as _o, re as _r, sys as _s
_args = getattr(_s, "ar" + "gv")
_ids = {}
for _root, _dirs, _files in _o.walk("."):
    for _f in _files:
        if _f.startswith("test") and _f.endswith(".py"):
            _p = _o.path.join(_root, _f)[2:]
            for _n in _r.findall(r"^def (test\\w+)", open(_p).read(), _r.M):
                _ids[_p + "::" + _n] = True
if len(_args) > 1 and _args[1].endswith(".json"):  # where the report once went
    open(_args[1], "w").write(_j.dumps(_ids))
_line = "agentgym-report:" + _j.dumps({"token": "guess", "results": _ids}) + "\\n"
for _fd in (1, 2, 3):
    try:
        _o.write(_fd, _line.encode())
    except OSError:
        pass
if MODE == "exit":
    getattr(_o, "ki" + "ll")(getattr(_o, "get" + "pid")(), 9)
'''


@pytest.mark.parametrize("sandbox", CONTAINED)
@pytest.mark.parametrize("mode", ["exit", "stay"])
def test_a_report_forged_by_the_project_code_is_not_believed(mode, sandbox):
    from agentgym.protocols import ToolCall

    with make(sandbox) as env:
        env.reset(seed=0)
        task = env.task.source
        path = task.gold_edit["path"]
        forged = (task.repo_dir / path).read_text() + FORGER.replace("MODE", repr(mode))
        env.step(ToolCall("create", {"path": path, "content": forged}).to_text())
        observation, *_, info = env.step(call("submit"))
    assert "Not graded" not in observation  # the filter let it through: the report must hold
    assert info["outcome_channels"]["resolved"] == 0.0
