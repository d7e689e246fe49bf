"""Helpers the test scripts share for the processes they start: a free port on 127.0.0.1, a
process's children (from /proc), and a graceful stop. Python 3 standard library."""

import os
import signal
import socket
import subprocess

HOST = "127.0.0.1"


def free_port():
    """A port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def children(pid):
    """The child processes of `pid` (from /proc)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def stop(server):
    """SIGTERM, then up to 60 s for a graceful stop, then SIGKILL."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
