"""What the Spark CI scripts (scripts/spark-import-test.py, scripts/spark-trainer-test.py) share:
a deadline for the whole script, a tally of checks, running a command, and an `osprey serve`
on 127.0.0.1 with a small JSON client. Talks only to 127.0.0.1; stops what it starts."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

_deadline = {"at": time.monotonic() + 600, "name": "spark test"}


def set_deadline(seconds, name):
    """Every wait of the script ends `seconds` from now; `name` says whose time ran out."""
    _deadline.update(at=time.monotonic() + seconds, name=name)


def remaining():
    left = _deadline["at"] - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"{_deadline['name']} ran out of time")
    return left


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            print(f"  FAILED: {what}", flush=True)
        return ok


def run(args, what, ok_codes=(0,)):
    """Runs a command to its end within the deadline; its output goes to stderr when its exit
    code is not one of `ok_codes`. The result carries `seconds`, how long it took."""
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=remaining(), stdin=subprocess.DEVNULL)
    if proc.returncode not in ok_codes:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"{what} exited {proc.returncode}")
    proc.seconds = time.monotonic() - started
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, body=None):
    """(status, JSON body) of a request to 127.0.0.1:`port`."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Server:
    """`osprey serve` on a data directory and a free port, answering /healthz when made."""

    def __init__(self, binary, data_dir, log_path):
        self.port = free_port()
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", str(self.port)],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        while True:
            remaining()
            if self.proc.poll() is not None:
                raise RuntimeError(f"osprey serve exited {self.proc.returncode}; see {log_path}")
            try:
                if http(self.port, "GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
