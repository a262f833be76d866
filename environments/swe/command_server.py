"""A container's command server: pid 1 runs the episode's commands, no exec per command.

``docker exec`` costs a ``runc exec`` (about 50 ms on a small machine) per command. Instead
the container's first process is this small Python program, reading requests on its stdin
(the container's attach stream) and answering on its stdout:

    request:  ">IIII" script length, stdin length, timeout in ms, output cap in bytes;
              then the script and the stdin bytes
    answers:  b"o" + ">I" length + output bytes (as the command prints, stderr merged)
              b"x" + ">I" 6 + ">iBB" exit code, timed out, output stopped

The server is pid 1, so the ``kill(-1)`` that ends everything a command left behind spares
it, and commands cannot signal it; it is not dumpable, so a command cannot read its memory
or its descriptors through ``/proc/1``. A request with an empty script is a ping.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from agentgym.errors import SandboxError

SERVER = r'''
import ctypes, os, select, signal, struct, subprocess, threading, time
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: /proc/1 is root's to read

def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    return data

def send(kind, payload):
    message = kind + struct.pack(">I", len(payload)) + payload
    while message:
        message = message[os.write(1, message):]

def feed(pipe, data):
    try:
        pipe.write(data)
        pipe.close()
    except OSError:
        pass

def kill_all():
    for _ in range(200):  # kill(-1) from pid 1 reaches every process but pid 1
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            break

WORKDIR = os.getcwd()  # a path, resolved again per command: a warm container's workspace
                       # is mounted over it after the server started

def reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break

while True:
    slen, ilen, timeout_ms, cap = struct.unpack(">IIII", read_exact(16))
    script, data = read_exact(slen).decode("utf-8", "surrogateescape"), read_exact(ilen)
    if not script:  # a ping: its stdin (a nonce) comes back, so a stale answer is told apart
        send(b"o", data)
        send(b"x", struct.pack(">iBB", 0, 0, 0))
        continue
    proc = subprocess.Popen(["bash", "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=WORKDIR)
    threading.Thread(target=feed, args=(proc.stdin, data), daemon=True).start()
    timer = threading.Timer(timeout_ms / 1000, kill_all)
    timer.start()
    started, total, stopped = time.monotonic(), 0, False
    fd = proc.stdout.fileno()
    while True:
        if not select.select([fd], [], [], 0.05)[0]:
            if proc.poll() is not None:
                kill_all()  # what it left behind may hold the output open
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        total += len(chunk)
        send(b"o", chunk)
        if total > cap:
            stopped = True
            kill_all()
            break
    timer.cancel()
    timed_out = time.monotonic() - started >= timeout_ms / 1000
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = -9
    proc.stdout.close()
    kill_all()
    reap()
    send(b"x", struct.pack(">iBB", code, timed_out, stopped))
'''


@dataclass
class Answer:
    """How a command ended, as the server reported it."""

    exit_code: int
    timed_out: bool
    stopped: bool


def request(script: str, stdin: bytes, timeout: float, cap: int) -> bytes:
    """The bytes of one request."""
    body = script.encode("utf-8", "surrogateescape")
    return struct.pack(">IIII", len(body), len(stdin), int(timeout * 1000), cap) + body + stdin


class Messages:
    """The server's answers, read from the stdout frames of an attach stream."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.answer: Answer | None = None

    def feed(self, data: bytes) -> bytes:
        """Take stream bytes; the output they complete, up to an answer (then ``answer``)."""
        self.buffer += data
        output = bytearray()
        while len(self.buffer) >= 5:
            kind, size = self.buffer[:1], struct.unpack(">I", self.buffer[1:5])[0]
            if len(self.buffer) < 5 + size:
                break
            payload = bytes(self.buffer[5:5 + size])
            del self.buffer[:5 + size]
            if kind == b"o":
                output += payload
            elif kind == b"x":
                code, timed_out, stopped = struct.unpack(">iBB", payload)
                self.answer = Answer(code, bool(timed_out), bool(stopped))
                break  # one answer at a time: what follows is the next one's
            else:
                raise SandboxError(f"The container's command server sent {kind!r}, not an "
                                   "answer: its stream is out of step.")
        return bytes(output)


def wait_ready(raw: socket.socket, deframe, seconds: float = 30.0) -> bool:
    """Ping the server until it answers this ping (it may still be starting).

    Answers to earlier pings, sent on an earlier attach that gave up, are read and dropped:
    taking one for ours would leave the stream one answer behind every later command.
    """
    nonce = os.urandom(16)
    raw.sendall(request("", nonce, 1, 0))
    messages, output, deadline = Messages(), b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not select.select([raw], [], [], 0.5)[0]:
            continue  # still starting (a socket timeout here would read as the stream's end)
        chunk = deframe()
        if chunk is None:
            return False
        output += messages.feed(chunk)
        while messages.answer is not None:
            if output == nonce:
                return True
            messages.answer = None  # an earlier ping's answer: read on
            output = messages.feed(b"")
    return False
