#!/usr/bin/env python3
"""Durability tests for `osprey serve` that the crash test cannot make (docs/operations.md,
"Durability").

1. Acknowledged means fsynced. The server runs under strace (-f, the file syncs, the socket writes
   and the log file's opens); 40 observes are sent one at a time. Each answer written to the
   socket must come after an fsync/fdatasync of the observation log (`osprey.sqlite-wal`) that
   began after the request was read. Run again with an LD_PRELOAD shim that turns fsync and
   fdatasync into no-ops (as `synchronous=OFF` would leave them out), the check must fail: the
   test can tell.
2. A real full disk. The data directory is a small tmpfs (mounted here; needs root). Observes
   run until the disk is full: they answer 503 `unavailable`, predict keeps answering 200. Once a
   filler file is removed, observes are accepted again. After SIGKILL and a restart, the user
   has exactly the observations that were acknowledged.

Only talks to 127.0.0.1, only signals the processes it started (by PID), unmounts what it
mounted; bounded in time. Python 3 standard library, strace and gcc (installed by
scripts/install-test-tools.sh).

Usage: scripts/durability-test.py [--binary .build/debug/osprey]
Prints `durability-test: N passed, M failed` and exits 1 if a check failed.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from process_support import HOST, children, free_port, stop

SHIM = r"""
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
"""


def request(port, method, path, body=None, timeout=10):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def wait_healthy(port, server, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode})")
        try:
            if request(port, "GET", "/healthz", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become healthy")


def train(binary, data, work):
    ratings = os.path.join(work, "ratings.csv")
    subprocess.run([binary, "generate", "--users", "50", "--items", "40", "--ratings", "800", "--dim", "4",
                    "--seed", "3", "--out", ratings], check=True, capture_output=True, timeout=120)
    subprocess.run([binary, "train", "--data-dir", data, "--model", "demo", "--ratings", ratings, "--dim", "4"],
                   check=True, capture_output=True, timeout=300)


# --------------------------------------------------------------------------------------------
# 1. The order of fsyncs and answers


def traced_observes(binary, work, preload=None):
    """Serves under strace, sends 40 observes; returns (acknowledged, answers not preceded by a
    log sync)."""
    data = os.path.join(work, "data-" + ("shim" if preload else "plain"))
    train(binary, data, work)
    port = free_port()
    trace = os.path.join(work, "strace-" + ("shim" if preload else "plain") + ".log")
    env = dict(os.environ)
    if preload:
        env["LD_PRELOAD"] = preload
    server = subprocess.Popen(["strace", "-f", "-tt", "-e", "trace=openat,fsync,fdatasync,read,recvfrom,write,writev,sendto,sendmsg",
                               "-e", "signal=none", "-s", "96", "-o", trace,
                               binary, "serve", "--data-dir", data, "--port", str(port), "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    acknowledged = 0
    try:
        wait_healthy(port, server)
        for n in range(40):
            status, body = request(port, "POST", "/v1/models/demo/users/sync-user/observe", {"item": f"i{n % 20}", "label": 3})
            if status == 200:
                acknowledged += 1
    finally:
        # strace detaches from the server when it is signalled: stop the server itself (its
        # child), then strace ends with it.
        for child in children(server.pid):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop(server)
    return acknowledged, unsynced_answers(trace)


def unsynced_answers(trace):
    """(answers not preceded by a completed fsync/fdatasync of the log's WAL since their request
    was read, answers seen) in an strace log. strace splits a call that another thread
    interrupts into `call(args <unfinished ...>` and `<... call resumed>rest`: a sync counts when
    it has returned, a read or write by the text it carries."""
    wal_fds = set()
    unfinished = {}  # pid -> (call, args so far)
    pending = []  # requests read and not yet answered: whether a log sync completed since
    unsynced, answers = 0, 0
    start = re.compile(r"^(\d+)\s+\S+\s+(\w+)\((.*)$")
    resumed = re.compile(r"^(\d+)\s+\S+\s+<\.\.\. (\w+) resumed>(.*)$")
    for line in open(trace, errors="replace"):
        m = start.match(line)
        if m:
            pid, call, rest = m.groups()
            if rest.rstrip().endswith("<unfinished ...>"):
                unfinished[pid] = (call, rest)
                continue
        else:
            m = resumed.match(line)
            if not m:
                continue
            pid, call, tail = m.groups()
            head = unfinished.pop(pid, (call, ""))[1].replace("<unfinished ...>", "")
            rest = head + tail
        if call == "openat" and "osprey.sqlite-wal" in rest:
            fd = re.search(r"=\s*(\d+)\s*$", rest.strip())
            if fd:
                wal_fds.add(fd.group(1))
        elif call in ("fsync", "fdatasync"):
            fd = re.match(r"\s*(\d+)", rest)
            if fd and fd.group(1) in wal_fds and re.search(r"=\s*0\s*$", rest.strip()):
                pending = [True for _ in pending]
        elif call in ("read", "recvfrom") and "POST /v1/models/demo/users/sync-user/observe" in rest:
            pending.append(False)
        elif call in ("write", "writev", "sendto", "sendmsg") and "HTTP/1.1 200" in rest and pending:
            answers += 1
            if not pending.pop(0):
                unsynced += 1
    return unsynced, answers


# --------------------------------------------------------------------------------------------
# 2. A full disk


def full_disk(binary, work):
    mount = os.path.join(work, "small-disk")
    os.makedirs(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mount], check=True, capture_output=True)
    server = None
    try:
        data = os.path.join(mount, "data")
        train(binary, data, work)
        port = free_port()
        log = open(os.path.join(work, "full-disk-serve.log"), "w")
        args = [binary, "serve", "--data-dir", data, "--port", str(port), "--log-level", "error"]
        server = subprocess.Popen(args, stdout=log, stderr=log)
        wait_healthy(port, server)
        # Leave a little room, then observe until the log can grow no more.
        filler = os.path.join(mount, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        os.truncate(filler, max(0, os.path.getsize(filler) - (1 << 20)))
        acknowledged, refused, other = 0, 0, []
        for n in range(200_000):
            status, body = request(port, "POST", "/v1/models/demo/users/disk-user/observe",
                                   {"item": f"i{n % 20}", "label": 4})
            if status == 200:
                acknowledged += 1
            elif status == 503 and '"unavailable"' in body:
                refused += 1
                if refused >= 20:
                    break
            else:
                other.append((status, body[:200]))
                break
        problems = []
        if refused < 20:
            problems.append(f"the disk never filled up: {acknowledged} acknowledged, {refused} refused, other {other[:3]}")
        if other:
            problems.append(f"answers other than 200 or 503 unavailable: {other[:3]}")
        status, _ = request(port, "GET", "/v1/models/demo/users/u1/predict?item=i1")
        if status != 200:
            problems.append(f"predict answered {status} on a full disk")
        # Space again: observes are accepted again.
        os.remove(filler)
        recovered = False
        for _ in range(100):
            status, _ = request(port, "POST", "/v1/models/demo/users/disk-user/observe", {"item": "i1", "label": 5})
            if status == 200:
                acknowledged += 1
                recovered = True
                break
            time.sleep(0.1)
        if not recovered:
            problems.append("observes were not accepted again after space was freed")
        # SIGKILL, restart: exactly what was acknowledged.
        server.kill()
        server.wait()
        server = subprocess.Popen(args, stdout=log, stderr=log)
        wait_healthy(port, server)
        status, body = request(port, "GET", "/v1/models/demo/users/disk-user")
        restored = json.loads(body).get("observations") if status == 200 else None
        if restored != acknowledged:
            problems.append(f"after a restart the user has {restored} observations, {acknowledged} were acknowledged")
        return problems, acknowledged, refused
    finally:
        if server is not None:
            stop(server)
        subprocess.run(["umount", mount], capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/debug/osprey")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="osprey-durability-")
    passed, failed = 0, 0
    try:
        acknowledged, (unsynced, answers) = traced_observes(binary, work)
        if acknowledged == 40 and answers == 40 and unsynced == 0:
            passed += 1
            print(f"ok   every one of {answers} observe answers followed an fsync of the log after its request")
        else:
            failed += 1
            print(f"FAIL fsync order: {acknowledged} acknowledged, {answers} answers traced, {unsynced} not preceded by a log sync")
        shim_c, shim = os.path.join(work, "nosync.c"), os.path.join(work, "nosync.so")
        with open(shim_c, "w") as f:
            f.write(SHIM)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", shim, shim_c], check=True)
        acknowledged, (unsynced, answers) = traced_observes(binary, work, preload=shim)
        if answers > 0 and unsynced == answers:
            passed += 1
            print(f"ok   with fsync turned off (LD_PRELOAD), all {answers} answers are caught unsynced: the check can fail")
        else:
            failed += 1
            print(f"FAIL the control: with fsync turned off, {unsynced} of {answers} answers were caught")
        if os.geteuid() != 0:
            failed += 1
            print("FAIL full disk: mounting a small tmpfs needs root")
        else:
            problems, acknowledged, refused = full_disk(binary, work)
            if problems:
                failed += 1
                print("FAIL full disk: " + "; ".join(problems))
            else:
                passed += 1
                print(f"ok   full disk: {acknowledged} acknowledged, then {refused} answered 503 while reads kept working; "
                      "writes resumed once space was freed; a restart after SIGKILL kept exactly what was acknowledged")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"durability-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
