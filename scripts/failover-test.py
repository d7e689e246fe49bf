#!/usr/bin/env python3
"""Failover without loss: three `osprey serve --node` processes on one PostgreSQL behind HAProxy,
one killed with SIGKILL under load and started again (docs/operations.md, "Partitioned serving").

  1. A throwaway PostgreSQL (scripts/postgres-server.sh); `osprey generate` and `osprey train`
     put a model in it.
  2. Three nodes with a 200 ms heartbeat and a 1 s member timeout, and HAProxy in front with the
     configuration `osprey router-config` writes for them (health checks every 100 ms).
  3. Writers send observations of fresh users through HAProxy, each to its user's path, and
     record every answer with its time. After a few seconds one node is killed (SIGKILL); later
     it is started again under the same name and takes its buckets back.
  4. One node retrains under load: every node serves the new version (announced through
     PostgreSQL's LISTEN/NOTIFY) within seconds.
  5. With --item-updates, the nodes serve with `--item-updates on --item-exchange-ms 200`, and
     before the retrain every node must report the same online observation count for every item
     (each has folded the others' sums), summing to the observations its users learned less at
     most what the killed node acknowledged in its last exchange intervals before the kill (the
     sums it had not published yet; docs/operations.md, "Partitioned serving"). Users then learn
     against item rows that depend on when the nodes exchanged, so the lone-replay check below is
     made with item updates off only.
  6. Checks:
     - failed requests (any answer but 200, or no answer) occur only inside the failover window
       after the kill and the takeover window after the rejoin, each at most the documented bound
       (member timeout + heartbeat interval + handover delay, plus HAProxy's detection and
       slack); their counts and the windows' lengths are printed;
     - no acknowledged observation is lost: every user's observation count is at least its
       acknowledged observations (and at most those plus its failed requests, which may have
       been logged before the answer was lost);
     - every user's weights are what a lone process replaying the whole log computes: the
       nodes' predictions for every user (on the retrained version) against those of a lone
       `osprey serve` started on the store after the nodes stop.

Only talks to 127.0.0.1 and stops what it started, by PID. Bounded by --timeout seconds
(default 300). Skipped, with the reason printed, when haproxy or PostgreSQL is missing, unless
--require.

Usage: scripts/failover-test.py [--binary .build/debug/osprey] [--require] [--timeout 300] [--item-updates]
Prints `failover-test: passed` with the measurements, or the failures, and exits 1 on a failure.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

HOST = "127.0.0.1"
MODEL = "fo"
NODES = ["node-a", "node-b", "node-c"]
HEARTBEAT_MS, TIMEOUT_MS = 250, 1500  # serve --heartbeat-ms, --member-timeout-ms
EXCHANGE_MS = 200  # serve --item-exchange-ms, with --item-updates
# The documented bound (docs/operations.md, "Partitioned serving"): the member timeout, one
# heartbeat interval to notice, the handover delay (three intervals); plus slack for a loaded
# two-core machine (HAProxy's checks find a dead node within 200 ms, and redispatch at once).
SERVED_AGAIN = (TIMEOUT_MS + HEARTBEAT_MS + 3 * HEARTBEAT_MS) / 1000
BOUND = SERVED_AGAIN + 1.5
# A rejoining node: its start, then the handover delay.
REJOIN_BOUND = (3 * HEARTBEAT_MS) / 1000 + 3.0
WRITERS, USERS = 4, 240
POSTGRES_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "postgres-server.sh")


def log(msg):
    print(f"failover-test: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def uid_path(uid):
    return urllib.parse.quote(uid, safe="-._~")


def call(port, method, path, body=None, timeout=5):
    """(status, json or None); status 0 when no answer came."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None
    except OSError:
        return 0, None
    finally:
        conn.close()


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, binary, url, work, items):
        self.binary, self.url, self.work, self.items = binary, url, work, items
        self.ports = {name: free_port() for name in NODES}
        self.procs = {}
        self.others = []

    def start(self, name):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        proc = subprocess.Popen(
            [self.binary, "serve", "--store", self.url, "--node", name, "--port", str(self.ports[name]),
             "--heartbeat-ms", str(HEARTBEAT_MS), "--member-timeout-ms", str(TIMEOUT_MS), "--log-level", "notice"]
            # No validation sample: its observations are held out from users and items alike,
            # and the item check counts every observation a user learned.
            + (["--item-updates", "on", "--item-exchange-ms", str(EXCHANGE_MS), "--validation-fraction", "0"] if self.items else []),
            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        wait_until(lambda: call(self.ports[name], "GET", "/healthz")[0] == 200 or proc.poll() is not None, 60,
                   f"{name} to answer")
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}: {self.tail(name)}")
        return proc

    def tail(self, name):
        try:
            return open(os.path.join(self.work, f"{name}.log"), errors="replace").read()[-800:]
        except OSError:
            return ""

    def stop_all(self):
        for proc in list(self.procs.values()) + self.others:
            if proc.poll() is None:
                proc.terminate()
        for proc in list(self.procs.values()) + self.others:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Writer(threading.Thread):
    """Observes random fresh users through the router until told to stop; records each answer."""

    def __init__(self, index, front, users, stop):
        super().__init__(daemon=True)
        self.rng = random.Random(index)
        self.front, self.users, self.stop = front, users, stop
        self.acked = {}  # uid -> count
        self.acked_at = []  # (time, uid) of each acknowledgement
        self.failed = []  # (time, uid, status, code)
        self.succeeded = []  # (time, uid)

    def run(self):
        while not self.stop.is_set():
            began = time.monotonic()
            uid = self.rng.choice(self.users)
            item = f"i{self.rng.randint(1, 50)}"
            label = round(self.rng.uniform(1, 5), 2)
            status, body = call(self.front, "POST", f"/v1/models/{MODEL}/users/{uid_path(uid)}/observe",
                                {"item": item, "label": label}, timeout=10)
            now = time.monotonic()
            if status == 200 and body and body.get("accepted"):
                self.acked[uid] = self.acked.get(uid, 0) + 1
                self.succeeded.append((began, uid))
                self.acked_at.append((now, uid))
            else:
                error = body.get("error", {}) if isinstance(body, dict) else {}
                self.failed.append((now, uid, status, error.get("code"), error.get("message", "")[:160]))


def check_items(cluster, front, writers, users, first_node, victim, killed_at):
    """Every node reports the same online observation count for every item, summing to what the
    users learned less at most what the victim acknowledged in its last exchange intervals."""
    time.sleep(3 * EXCHANGE_MS / 1000 + 0.5)  # every node has published and folded the others' sums
    counts = {}
    for name in NODES:
        for item in (f"i{i}" for i in range(1, 51)):
            status, body = call(cluster.ports[name], "GET", f"/v1/models/{MODEL}/items/{item}")
            if status != 200:
                return [f"item {item} on {name}: {status} {body}"]
            counts.setdefault(item, {})[name] = body.get("observations", 0)
    differ = {item: c for item, c in counts.items() if len(set(c.values())) != 1}
    if differ:
        return [f"nodes disagree on {len(differ)} items' observation counts, e.g. {list(differ.items())[:3]}"]
    folded = sum(c[NODES[0]] for c in counts.values())
    learned = 0
    for uid in users:
        status, info = call(front, "GET", f"/v1/models/{MODEL}/users/{uid_path(uid)}")
        if status != 200:
            return [f"user info of {uid}: {status} {info}"]
        learned += info["observations"]
    # What the victim may not have published: its acknowledgements in its last two exchange
    # intervals (and a half-second's slack) before the kill.
    window = 2 * EXCHANGE_MS / 1000 + 0.5
    unpublished = sum(1 for w in writers for t, uid in w.acked_at
                      if first_node(uid) == victim and killed_at - window <= t <= killed_at)
    log(f"items: every node folded the same counts for 50 items: {folded} observations of {learned} learned "
        f"({learned - folded} missing; the killed node acknowledged {unpublished} in its last {window:.1f} s)")
    if not learned - unpublished <= folded <= learned:
        return [f"the items hold {folded} observations, the users learned {learned}; at most {unpublished} may be missing"]
    return []


def run(args, work, cleanup):
    os.chmod(work, 0o755)  # the server runs as the `postgres` user when we are root
    pg = os.path.join(work, "pg")
    started = subprocess.run(["bash", POSTGRES_SERVER, "start", pg], capture_output=True, timeout=90, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, OWNER_PID=str(os.getpid())))
    if started.returncode != 0:
        raise AssertionError(f"scripts/postgres-server.sh start failed: {started.stderr.decode(errors='replace')[-400:]}")
    cleanup.append(lambda: subprocess.run(["bash", POSTGRES_SERVER, "stop", pg], capture_output=True, timeout=60))
    url = started.stdout.decode().strip().splitlines()[-1]
    ratings = os.path.join(work, "ratings.csv")
    subprocess.run([args.binary, "generate", "--users", "300", "--items", "50", "--ratings", "6000", "--dim", "4",
                    "--seed", "5", "--out", ratings], check=True, capture_output=True, timeout=120)
    subprocess.run([args.binary, "train", "--store", url, "--model", MODEL, "--ratings", ratings, "--dim", "4",
                    "--lambda", "1", "--iterations", "5"], check=True, capture_output=True, timeout=300)
    log(f"trained model {MODEL!r} in a throwaway PostgreSQL")

    cluster = Cluster(args.binary, url, work, args.item_updates)
    cleanup.append(cluster.stop_all)
    for name in NODES:
        cluster.start(name)
    front = free_port()
    config = os.path.join(work, "haproxy.cfg")
    command = [args.binary, "router-config", "--bind", f"{HOST}:{front}", "--check-ms", "100", "--out", config]
    for name in NODES:
        command += ["--node", f"{name}={HOST}:{cluster.ports[name]}"]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    text = open(config).read()
    ranked = {}
    for node, bucket in re.findall(r"use-server (\S+) if \{ var\(txn\.bucket\) -m int (\d+) \}", text):
        ranked.setdefault(int(bucket), []).append(node)
    buckets = int(re.search(r"crc32,mod\((\d+)\)", text).group(1))

    def first_node(uid):
        return ranked[zlib.crc32(uid_path(uid).encode()) % buckets][0]

    haproxy = subprocess.Popen(["haproxy", "-f", config, "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster.others.append(haproxy)
    users = [f"fo-{i}" for i in range(USERS)] + [f"fo user {i}/é" for i in range(USERS // 8)]
    # Every node has taken its buckets (the handover delay) and HAProxy has found them all up.
    wait_until(lambda: all(call(front, "GET", f"/v1/models/{MODEL}/users/{uid_path(u)}")[0] == 200 for u in users[:40]), 30,
               "every node to serve its users through HAProxy")
    log(f"3 nodes and HAProxy up; {len(users)} users, {WRITERS} writers")

    stop = threading.Event()
    writers = [Writer(i, front, users, stop) for i in range(WRITERS)]
    for w in writers:
        w.start()
    time.sleep(3)
    victim = NODES[1]
    killed_at = time.monotonic()
    os.kill(cluster.procs[victim].pid, signal.SIGKILL)
    cluster.procs[victim].wait()
    log(f"SIGKILLed {victim} under load")
    time.sleep(BOUND + 3)
    rejoined_at = time.monotonic()  # it joins before it answers health checks
    cluster.start(victim)
    log(f"started {victim} again")
    time.sleep(REJOIN_BOUND + 3)
    stop.set()
    for w in writers:
        w.join(timeout=30)
    item_problems = check_items(cluster, front, writers, users, first_node, victim, killed_at) if args.item_updates else []
    # A version trained on one node, under load, is served by every node (LISTEN/NOTIFY).
    status, job = call(cluster.ports[NODES[0]], "POST", f"/v1/models/{MODEL}/retrain", {"wait": True}, timeout=120)
    if status != 200 or job.get("phase") != "done":
        raise AssertionError(f"retrain on {NODES[0]}: {status} {job}")
    announced = time.monotonic()
    wait_until(lambda: all(call(cluster.ports[n], "GET", f"/v1/models/{MODEL}")[1].get("version") == job["version"] for n in NODES),
               10, f"every node to serve version {job['version']}")
    log(f"version {job['version']}, trained on {NODES[0]} under load, served by every node "
        f"{time.monotonic() - announced:.2f} s after the retrain returned")
    time.sleep(2)
    stop.set()
    for w in writers:
        w.join(timeout=30)
    ended_at = time.monotonic()

    acked, failed, succeeded = {}, [], []
    for w in writers:
        for uid, n in w.acked.items():
            acked[uid] = acked.get(uid, 0) + n
        failed += w.failed
        succeeded += w.succeeded
    # Failover time: from the kill to the first acknowledged observation of one of its users.
    victims = {u for u in users if first_node(u) == victim}
    served_again = min((t for t, u in succeeded if u in victims and t > killed_at), default=None)
    taken_back = min((t for t, u in succeeded if u in victims and t > rejoined_at), default=None)
    total = sum(acked.values())
    in_failover = [f for f in failed if killed_at <= f[0] <= killed_at + BOUND]
    in_rejoin = [f for f in failed if rejoined_at <= f[0] <= rejoined_at + REJOIN_BOUND]
    outside = [f for f in failed if f not in in_failover and f not in in_rejoin]
    failover_window = max((f[0] for f in in_failover), default=killed_at) - killed_at
    rejoin_window = max((f[0] for f in in_rejoin), default=rejoined_at) - rejoined_at
    codes = {}
    for f in failed:
        key = f"{f[2]} {f[3] or ''}".strip()
        codes[key] = codes.get(key, 0) + 1
    log(f"{total} observations acknowledged in {ended_at - killed_at + 3:.1f} s; {len(failed)} requests failed: {codes}")
    if served_again is None or served_again > killed_at + BOUND:
        problems_early = [f"{victim}'s users were not served again within {BOUND:.2f} s of the kill"]
    else:
        problems_early = []
        log(f"failover: {victim}'s {len(victims)} users served again {served_again - killed_at:.2f} s after the kill "
            f"(member timeout + heartbeat + handover = {SERVED_AGAIN:.2f} s)")
    log(f"after the kill: {len(in_failover)} failed, the last {failover_window:.2f} s after it (bound {BOUND:.2f} s)")
    log(f"after the rejoin: {len(in_rejoin)} failed, the last {rejoin_window:.2f} s after it (bound {REJOIN_BOUND:.2f} s)")
    problems = problems_early + item_problems
    if taken_back is None:
        problems.append(f"{victim}'s users were not served after it rejoined")
    if outside:
        shown = [(round(f[0] - killed_at, 2), f[1], f[2], f[4]) for f in outside[:3]]
        problems.append(f"{len(outside)} requests failed outside the windows (seconds after the kill, uid, status, message): {shown}")

    # No acknowledged observation is lost; the nodes' weights are a lone replay's.
    failed_by_user = {}
    for f in failed:
        failed_by_user[f[1]] = failed_by_user.get(f[1], 0) + 1
    cluster_scores = {}
    for uid in users:
        status, info = call(front, "GET", f"/v1/models/{MODEL}/users/{uid_path(uid)}")
        if status != 200:
            problems.append(f"user info of {uid}: {status} {info}")
            continue
        n, want = info["observations"], acked.get(uid, 0)
        if not want <= n <= want + failed_by_user.get(uid, 0):
            problems.append(f"{uid}: {n} observations learned, {want} acknowledged, {failed_by_user.get(uid, 0)} failed")
        status, p = call(front, "GET", f"/v1/models/{MODEL}/users/{uid_path(uid)}/predict?item=i7")
        cluster_scores[uid] = p["score"] if status == 200 else None
    cluster.stop_all()
    cluster.procs, cluster.others = {}, []
    if args.item_updates:
        if problems:
            raise AssertionError("; ".join(problems))
        return
    lone_port = free_port()
    out = open(os.path.join(work, "lone.log"), "ab")
    lone = subprocess.Popen([args.binary, "serve", "--store", url, "--port", str(lone_port), "--log-level", "notice"],
                            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    cluster.others.append(lone)
    wait_until(lambda: call(lone_port, "GET", "/healthz")[0] == 200 or lone.poll() is not None, 60, "the lone server")
    differ = []
    for uid in users:
        status, p = call(lone_port, "GET", f"/v1/models/{MODEL}/users/{uid_path(uid)}/predict?item=i7")
        if status != 200 or cluster_scores.get(uid) is None or abs(p["score"] - cluster_scores[uid]) > 1e-4:
            differ.append((uid, cluster_scores.get(uid), p and p.get("score")))
    if differ:
        problems.append(f"{len(differ)} users' predictions differ from a lone replay's, e.g. {differ[:3]}")
    else:
        log(f"every one of {len(users)} users predicts as a lone process replaying the whole log does")
    if problems:
        raise AssertionError("; ".join(problems))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/osprey")
    parser.add_argument("--require", action="store_true", help="fail instead of skipping when haproxy or PostgreSQL is missing")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--item-updates", action="store_true", help="nodes learn items online too, exchanging their sums")
    args = parser.parse_args()
    args.binary = os.path.abspath(args.binary)
    missing = [tool for tool in ("haproxy", "initdb") if shutil.which(tool) is None and not (
        tool == "initdb" and os.path.exists("/usr/lib/postgresql/15/bin/initdb"))]
    if missing:
        log(f"{' and '.join(missing)} not installed (scripts/install-test-tools.sh installs them)" + ("" if args.require else ": skipped"))
        return 1 if args.require else 0
    watchdog = threading.Timer(args.timeout, lambda: (log(f"FAIL: over {args.timeout:g} s"), os._exit(1)))
    watchdog.daemon = True
    watchdog.start()
    work = tempfile.mkdtemp(prefix="osprey-failover-test-")
    cleanup = []
    try:
        run(args, work, cleanup)
        log("passed")
        return 0
    except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        log(f"FAIL: {e}")
        for name in NODES:
            path = os.path.join(work, f"{name}.log")
            if os.path.exists(path):
                log(f"{name}'s log ends: {open(path, errors='replace').read()[-600:]}")
        return 1
    finally:
        for step in reversed(cleanup):
            try:
                step()
            except Exception as e:  # cleanup goes on
                log(f"cleanup: {e}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
