#!/usr/bin/env python3
"""HAProxy routes each user as the nodes' partition ring says: `osprey router-config` against a
real HAProxy.

Starts three stub nodes (HTTP servers on 127.0.0.1 that answer every request with their name,
and /healthz with 200), writes an HAProxy configuration for them with `osprey router-config
--check-ms 100`, starts HAProxy on it, and checks:
  1. every request under /v1/models/M/users/UID/ for 600 uids (plain, and ones that need
     percent-encoding) reaches the first node of the ranking the configuration gives the uid's
     bucket (zlib.crc32 of the uid's path segment, mod the bucket count), and a path that is not
     a user's goes round-robin;
  2. with one node stopped, HAProxy's health checks find it down and each of its users reaches
     the next node of the bucket's ranking, while every other user stays where it was;
  3. with the node back, every user is back on its first node.
The stub nodes stand in for `osprey serve --node`: what is tested is that HAProxy and the ring
agree (scripts/failover-test.py runs real nodes).

Only talks to 127.0.0.1 and stops what it started. Bounded by --timeout seconds (default 60).
Skipped, with the reason printed, when haproxy is not installed, unless --require.

Usage: scripts/router-test.py [--binary .build/debug/osprey] [--require] [--timeout 60]
"""

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

HOST = "127.0.0.1"
NODES = ["osprey-a", "osprey-b", "osprey-c"]


def log(msg):
    print(f"router-test: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class StubNode:
    """An HTTP server that answers every request with its name (and /healthz with 200)."""

    def __init__(self, name, port):
        self.name, self.port, self.server = name, port, None

    def start(self):
        name = self.name

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = json.dumps({"node": name}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # HAProxy's health checks close their connections at once

        self.server = Server((HOST, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def request(port, path, method="GET"):
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None,
                     headers={"Content-Type": "application/json", "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body or b"{}").get("node")
        except ValueError:  # HAProxy's own error page (a 503 while a node is found down)
            return response.status, None
    finally:
        conn.close()


def rankings(config):
    """bucket -> [node, ...] in the configuration's rule order; the bucket count."""
    ranked = {}
    for node, bucket in re.findall(r"use-server (\S+) if \{ var\(txn\.bucket\) -m int (\d+) \}", config):
        ranked.setdefault(int(bucket), []).append(node)
    count = int(re.search(r"crc32,mod\((\d+)\)", config).group(1))
    return ranked, count


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run(args, work, started):
    ports = {name: free_port() for name in NODES}
    nodes = {name: StubNode(name, port) for name, port in ports.items()}
    for node in nodes.values():
        node.start()
        started.append(node)
    front = free_port()
    config_path = os.path.join(work, "haproxy.cfg")
    command = [args.binary, "router-config", "--bind", f"{HOST}:{front}", "--check-ms", "100", "--out", config_path]
    for name in NODES:
        command += ["--node", f"{name}={HOST}:{ports[name]}"]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    config = open(config_path).read()
    ranked, buckets = rankings(config)
    assert len(ranked) == buckets and all(sorted(r) == sorted(NODES) for r in ranked.values()), "a ranking per bucket"
    haproxy = subprocess.Popen(["haproxy", "-f", config_path, "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started.append(haproxy)
    wait_until(lambda: request_ok(front), 10, "HAProxy to answer")

    uids = [f"u{i}" for i in range(500)] + [f"user {i}/é" for i in range(100)]

    def path(uid, model="demo"):
        return f"/v1/models/{model}/users/{urllib.parse.quote(uid, safe='-._~')}/predict?item=i1"

    def expected(uid, down=()):
        segment = urllib.parse.quote(uid, safe="-._~").encode()
        return next(n for n in ranked[zlib.crc32(segment) % buckets] if n not in down)

    def check(down=()):
        wrong = []
        for uid in uids:
            status, node = request(front, path(uid))
            if status != 200 or node != expected(uid, down):
                wrong.append((uid, status, node, expected(uid, down)))
        return wrong

    # HAProxy starts with every server up only after its first checks pass.
    wait_until(lambda: not check(), 10, "every user on its first node")
    log(f"{len(uids)} users, each on the first node of its bucket's ranking ({buckets} buckets)")
    seen = {request(front, "/v1/models/demo")[1] for _ in range(9)}
    assert seen == set(NODES), f"a path that is not a user's goes round-robin, saw {seen}"
    log("model paths go round-robin over all three nodes")

    victim = NODES[1]
    moved = sum(1 for u in uids if expected(u) == victim)
    nodes[victim].stop()
    wait_until(lambda: not check(down=(victim,)), 10, f"{victim}'s users to move to their next node")
    log(f"{victim} stopped: its {moved} users reached the next node of their rankings, the other {len(uids) - moved} stayed")
    nodes[victim].start()
    wait_until(lambda: not check(), 10, f"{victim}'s users to come back")
    log(f"{victim} back: every user on its first node again")


def request_ok(port):
    try:
        request(port, "/healthz")
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/osprey")
    parser.add_argument("--require", action="store_true", help="fail instead of skipping when haproxy is missing")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    args.binary = os.path.abspath(args.binary)
    if shutil.which("haproxy") is None:
        log("haproxy is not installed (scripts/install-test-tools.sh installs it)" + ("" if args.require else ": skipped"))
        return 1 if args.require else 0
    watchdog = threading.Timer(args.timeout, lambda: (log(f"FAIL: over {args.timeout:g} s"), os._exit(1)))
    watchdog.daemon = True
    watchdog.start()
    work = tempfile.mkdtemp(prefix="osprey-router-test-")
    started = []
    try:
        run(args, work, started)
        log("passed")
        return 0
    except (AssertionError, subprocess.CalledProcessError) as e:
        log(f"FAIL: {e}")
        for item in started:
            if isinstance(item, subprocess.Popen) and item.stderr and item.poll() is not None:
                log(item.stderr.read().decode(errors="replace")[-800:])
        return 1
    finally:
        for item in reversed(started):
            if isinstance(item, subprocess.Popen):
                item.terminate()
                try:
                    item.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    item.kill()
            else:
                item.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
