"""Talking to a running container: its command server's attach stream, and execs.

Both speak the engine's multiplexed stream (:class:`Frames`). A container whose pid 1 is the
command server (``command_server.py``) is driven through one :class:`Channel` for its whole
life; an image without ``python3`` gets an exec per command (:func:`exec_stream`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from agentgym.errors import SandboxError
from environments.swe import command_server
from environments.swe.docker_engine import Engine
from environments.swe.sandbox import Limits, RunResult, drain


class ServerLost(SandboxError):
    """The container's command server stopped answering (the container restarts)."""


class Frames:
    """The engine's multiplexed stream as plain bytes (8-byte header, then payload).

    ``streams``: which to keep (1 stdout, 2 stderr).
    """

    def __init__(self, raw: socket.socket, streams: tuple[int, ...] = (1, 2)) -> None:
        self.raw, self.header, self.left, self.streams, self.keep = raw, b"", 0, streams, True

    def read(self) -> bytes | None:
        """The payload in what the socket has now; ``None`` at the end of the stream."""
        try:
            chunk = self.raw.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        payload = bytearray()
        while chunk:
            if self.left == 0:
                need = 8 - len(self.header)
                self.header, chunk = self.header + chunk[:need], chunk[need:]
                if len(self.header) == 8:
                    self.keep = self.header[0] in self.streams
                    self.left, self.header = int.from_bytes(self.header[4:], "big"), b""
                continue
            if self.keep:
                payload += chunk[:self.left]
            chunk, self.left = chunk[self.left:], self.left - len(chunk[:self.left])
        return bytes(payload)

    def read_all(self) -> bytes:
        """Everything until the stream ends."""
        chunks = []
        while (chunk := self.read()) is not None:
            chunks.append(chunk)
        return b"".join(chunks)


class Channel:
    """The attach stream of a container whose pid 1 is the command server."""

    def __init__(self, on: Engine, container: str) -> None:
        with on.failing("attaching to a sandbox container"):
            self.stream = on.api.attach_socket(container, params={
                "stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self.raw: socket.socket = getattr(self.stream, "_sock", self.stream)
        self.frames = Frames(self.raw, streams=(1,))  # the server's own stderr: not ours

    def ready(self) -> bool:
        """Whether the server answers a ping."""
        return command_server.wait_ready(self.raw, self.frames.read)

    def run(self, script: str, stdin: bytes, timeout: float, limits: Limits) -> RunResult:
        """One command through the server; its output kept as ``drain`` keeps it."""
        messages = command_server.Messages()
        self.raw.sendall(command_server.request(script, stdin, timeout, limits.output_bytes))

        def read() -> bytes | None:
            chunk = self.frames.read()
            return None if chunk is None else messages.feed(chunk)

        unlimited = dataclasses.replace(limits, output_bytes=1 << 62)  # the server stops it
        output = drain(self.raw.fileno(), read, unlimited, timeout,
                       done=lambda: messages.answer is not None)
        answer = messages.answer
        if answer is None:
            raise ServerLost(f"the command server did not answer ({output.total} bytes read)")
        return dataclasses.replace(output.result(answer.exit_code), timed_out=answer.timed_out,
                                   output_stopped=answer.stopped)

    def collect(self, script: str, stdin: bytes, timeout: float = 600.0) -> tuple[bytes, int]:
        """All the output and the exit code of one of our own commands (tar), no limits."""
        messages, chunks = command_server.Messages(), []
        self.raw.sendall(command_server.request(f"{script} 2>/dev/null", stdin, timeout,
                                                1 << 31))
        while messages.answer is None:
            chunk = self.frames.read()
            if chunk is None:
                raise ServerLost("the command server went away")
            chunks.append(messages.feed(chunk))
        return b"".join(chunks), messages.answer.exit_code

    def close(self) -> None:
        """Close the stream."""
        self.raw.close()


def connect(on: Engine, container: str) -> Channel:
    """The channel to a started container's command server, once it answers."""
    channel = Channel(on, container)
    if not channel.ready():
        channel.close()
        raise ServerLost(f"no command server in container {container[:12]}")
    return channel


@dataclasses.dataclass
class Exec:
    """A started exec: its stream (``frames``, ``fileno``) and, once it ends, ``exit_code``."""

    on: Engine
    id: str
    raw: socket.socket
    frames: Frames

    def fileno(self) -> int:
        """The stream's socket, to wait on."""
        return self.raw.fileno()

    def exit_code(self) -> int:
        """The exit code (-1 if the engine never records one)."""
        for _ in range(200):  # the stream can end a moment before the engine records the exit
            with self.on.failing("reading a command's exit code"):
                state = self.on.api.exec_inspect(self.id)
            if not state["Running"]:
                return int(state["ExitCode"])
            time.sleep(0.005)
        return -1


@contextlib.contextmanager
def exec_stream(on: Engine, container: str, argv: list[str], stdin: bytes, what: str,
                stderr: bool = True) -> Iterator[Exec]:
    """Run ``argv`` in ``container`` fed ``stdin`` (then closed); the stream closes after."""
    with on.failing(what):
        run = on.api.exec_create(container, argv, stdin=True, stderr=stderr)["Id"]
        stream: Any = on.api.exec_start(run, socket=True)
    raw: socket.socket = getattr(stream, "_sock", stream)
    try:
        threading.Thread(target=_send, args=(raw, stdin), daemon=True).start()
        yield Exec(on, run, raw, Frames(raw))
    finally:
        raw.close()
        stream.close()


def _send(raw: socket.socket, data: bytes) -> None:
    try:
        if data:
            raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)  # the engine closes the command's stdin
    except OSError:
        pass  # the command ended (or was stopped) before reading it all
