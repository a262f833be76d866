"""Docker engines a test starts itself: on a unix socket, or over TCP on the loopback address.

A TCP engine stands for a remote one: the docker sandbox cannot bind this machine's folders
into it and copies workspaces instead.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

from environments.swe.docker_engine import docker_available

STARTED: list[DockerEngine] = []


def wait_until(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DockerEngine:
    """A docker engine of the test's own: a unix socket, or TCP on the loopback address."""

    def __init__(self, tcp: bool) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ag-engine-", dir="/tmp"))  # short: sockets
        hosts = ["-H", f"unix://{self.folder}/docker.sock"]
        self.url = hosts[1]
        if tcp:
            self.url = f"tcp://127.0.0.1:{free_port()}"
            hosts += ["-H", self.url, "--tls=false"]
        self.log = (self.folder / "dockerd.log").open("w")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", f"{self.folder}/data", "--exec-root",
             f"{self.folder}/exec", "--pidfile", f"{self.folder}/dockerd.pid", *hosts,
             "--bridge=none", "--iptables=false"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: docker_available(self.url) or self.proc.poll() is not None, 120)
        assert self.proc.poll() is None, (self.folder / "dockerd.log").read_text()[-2000:]
        STARTED.append(self)

    def stop(self) -> None:
        if self in STARTED:
            STARTED.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()  # dockerd stops its containers and its containerd
            self.proc.wait(timeout=120)
        self.log.close()
        subprocess.run(["rm", "-rf", str(self.folder)])


_REMOTE: list[DockerEngine] = []


def remote_url() -> str:
    """The URL of this test run's TCP engine (started on first use, stopped at the end)."""
    if not _REMOTE:
        _REMOTE.append(DockerEngine(tcp=True))
    return _REMOTE[0].url


def stop_all() -> None:
    """Stop every engine the tests started and did not stop."""
    while STARTED:
        STARTED.pop().stop()
    _REMOTE.clear()
