"""Shared by the benchmarks that drive `osprey serve` over HTTP from Python: a keep-alive JSON
client and a server started on a free loopback port and stopped (SIGTERM, then SIGKILL) by its
PID."""

import argparse
import csv
import http.client
import json
import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection to the server."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        payload = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {payload[:300]!r}")
        return json.loads(payload)


class Server:
    """`osprey serve` on DATA with OPTIONS, as a context manager giving a Client."""

    def __init__(self, binary, data, options, log_path):
        self.binary, self.data, self.options, self.log_path = binary, data, options, log_path

    def __enter__(self):
        self.port = free_port()
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([self.binary, "serve", "--data-dir", self.data, "--port", str(self.port)] + self.options,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            try:
                client = Client(self.port)
                client.call("GET", "/healthz")
                return client
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.time() > deadline or self.process.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"the server did not start; see {self.log_path}")
                time.sleep(0.2)

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        return False


def data_arguments(description):
    """A parser with the options the API benchmarks share: the binary, the generated data's size
    and true rank, the model's d and the seed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--binary", default=".build/release/osprey")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--ratings", type=int, default=100000)
    ap.add_argument("--true-dim", type=int, default=10)
    ap.add_argument("--dim", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    return ap


def read_ratings(path):
    """A ratings CSV (`uid,item,label,timestamp`) as (uid, item, label, timestamp) tuples."""
    with open(path) as f:
        return [(r["uid"], r["item"], float(r["label"]), int(r["timestamp"])) for r in csv.DictReader(f)]


def write_ratings(path, rows):
    """Writes (uid, item, label, timestamp) tuples as a ratings CSV `osprey train` reads."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "item", "label", "timestamp"])
        w.writerows(rows)


def stream(client, model, rows, batch=500):
    """Sends (uid, item, label, _) rows through the bulk observations API, `batch` to a request."""
    for i in range(0, len(rows), batch):
        client.call("POST", f"/v1/models/{model}/observations",
                    {"observations": [{"uid": u, "item": it, "label": y} for u, it, y, _ in rows[i:i + batch]]})
