#!/usr/bin/env python3
"""Crash-durability test for `osprey serve`.

Kills the server with SIGKILL while client threads stream observations, restarts it on the
same data directory, and checks that every acknowledged observation is in the log and in the
user's restored weights. Before the kill, a second `serve` and a `retrain` on the directory must
be refused by its lock; after the restart, `models` must read it beside the server. Then stops the restarted server gracefully (SIGTERM), starts it a
third time and checks that the snapshot taken on shutdown restores exactly.

With --postgres the stores are in PostgreSQL instead of a data directory: the test starts a
throwaway PostgreSQL server of its own (scripts/postgres-server.sh, on a unix socket in its
working directory), passes `--store URL` to every command, and stops the server at the end; the
second writer must then be refused by the database's writer lock.

Only talks to 127.0.0.1 and only signals the server processes it started (by PID). Bounded by
--timeout seconds overall (default 120). Python 3 standard library only.

Usage: scripts/crash-test.py [--binary .build/debug/osprey] [--postgres] [--seed N] [--keep] [--timeout 120]
Prints `crash-test: 1 passed, 0 failed` and exits 0 on success; on failure prints what failed,
the tail of the server logs, `crash-test: 0 passed, 1 failed` and exits 1.
"""

import argparse
import errno
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HOST = "127.0.0.1"
MODEL = "demo"
N_USERS = 50
N_THREADS = 8
PROBE_ITEM = "i1"
HTTP_TIMEOUT = 2.0
HEALTH_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
POSTGRES_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "postgres-server.sh")


class Overtime(Exception):
    """Raised when the overall time budget is spent."""


class Failure(Exception):
    """A check failed in a way that makes the rest of the run meaningless."""


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# Time budget


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def check(self, what):
        if self.remaining() <= 0:
            raise Overtime(f"overall timeout reached while {what}")

    def cap(self, seconds):
        """`seconds`, but no more than what is left of the budget (at least a sliver)."""
        return max(0.05, min(seconds, self.remaining()))


# --------------------------------------------------------------------------------------------
# HTTP helpers (127.0.0.1 only)


def uid_path(uid):
    return urllib.parse.quote(uid, safe="")


def http_json(port, method, path, body=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection; returns (status, parsed JSON or raw text)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed
    finally:
        conn.close()


def get_ok(port, path):
    status, body = http_json(port, "GET", path)
    if status != 200:
        raise Failure(f"GET {path} returned {status}: {body}")
    return body


def user_info(port, uid):
    return get_ok(port, f"/v1/models/{MODEL}/users/{uid_path(uid)}")


def predict(port, uid, item):
    body = get_ok(port, f"/v1/models/{MODEL}/users/{uid_path(uid)}/predict?item={urllib.parse.quote(item)}")
    return body["score"]


def free_port(avoid=()):
    for _ in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in avoid:
            return port
    raise Failure("could not find a free port")


# --------------------------------------------------------------------------------------------
# Server processes


class Servers:
    """Starts `osprey serve` processes and remembers their PIDs so cleanup kills only those."""

    def __init__(self, binary, store, work_dir, deadline):
        self.binary = binary
        self.store = store
        self.work_dir = work_dir
        self.deadline = deadline
        self.procs = []  # (label, Popen, log path)
        self.lock = threading.Lock()

    def start(self, label, avoid_ports=()):
        """Starts a server, waits for /healthz; returns (proc, port). Retries on a port race."""
        for attempt in range(3):
            port = free_port(avoid_ports)
            log_path = os.path.join(self.work_dir, f"serve-{label}-{attempt}.log")
            # Block the overall-timeout alarm so a started process is always recorded for cleanup.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            try:
                with open(log_path, "wb") as log_file:
                    proc = subprocess.Popen(
                        [self.binary, "serve"] + self.store + ["--port", str(port),
                         "--snapshot-observations", "300"],
                        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
                with self.lock:
                    self.procs.append((f"{label} (attempt {attempt})", proc, log_path))
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
            started = time.monotonic()
            if self.wait_healthy(proc, port):
                log(f"server {label}: pid {proc.pid}, port {port}, healthy after "
                    f"{time.monotonic() - started:.2f}s")
                return proc, port
            if proc.poll() is None:
                raise Failure(f"server {label} (pid {proc.pid}) not healthy within {HEALTH_TIMEOUT:.0f}s")
            text = read_text(log_path).lower()
            if "address already in use" in text or "eaddrinuse" in text:
                log(f"server {label}: port {port} was taken, retrying on another port")
                continue
            raise Failure(f"server {label} exited with code {proc.returncode} before becoming healthy")
        raise Failure(f"server {label}: no free port after 3 attempts")

    def wait_healthy(self, proc, port):
        limit = time.monotonic() + self.deadline.cap(HEALTH_TIMEOUT)
        while time.monotonic() < limit:
            if proc.poll() is not None:
                return False
            try:
                status, _ = http_json(port, "GET", "/healthz", timeout=1.0)
                if status == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        self.deadline.check("waiting for /healthz")
        return False

    def kill_all(self):
        """Kills (SIGKILL, by PID) every started server that is still running."""
        with self.lock:
            procs = list(self.procs)
        for label, proc, _ in procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log(f"warning: server {label} (pid {proc.pid}) did not die after SIGKILL")

    def log_tails(self, lines=40):
        with self.lock:
            procs = list(self.procs)
        for label, proc, path in procs:
            text = read_text(path)
            tail = text.splitlines()[-lines:]
            log(f"----- tail of server {label} log ({path}, exit code {proc.poll()}) -----")
            for line in tail:
                log(f"  {line}")
        if procs:
            log("----- end of server logs -----")


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_tool(args, deadline, what):
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=deadline.cap(60))
    if proc.returncode != 0:
        raise Failure(f"{what} failed (exit {proc.returncode}):\n{proc.stdout.decode(errors='replace')}"
                      f"{proc.stderr.decode(errors='replace')}")


# --------------------------------------------------------------------------------------------
# Load


class ClientThread(threading.Thread):
    """Streams observes for the users it owns, one request at a time over a keep-alive connection."""

    def __init__(self, index, port, users, seed, stop, kill_time):
        super().__init__(name=f"client-{index}", daemon=True)
        self.port = port
        self.users = users
        self.rng = random.Random(seed)
        self.stop = stop
        self.kill_time = kill_time  # [monotonic time of the kill] once it happened
        self.acked = {u: 0 for u in users}
        self.attempts = {u: 0 for u in users}  # requests that reached a connected socket
        self.errors_before_kill = []
        self.errors_after_kill = 0
        self.bad_acks = []

    def run(self):
        conn = None
        turn = 0
        while not self.stop.is_set():
            uid = self.users[turn % len(self.users)]
            item = f"i{self.rng.randrange(50)}"
            label = float(self.rng.randint(1, 5))
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT)
                    conn.connect()
            except OSError as e:
                self.note_error(f"connect: {e!r}")
                conn = None
                self.stop.wait(0.05)
                continue
            # From here on the request may reach the server: it counts as an attempt.
            self.attempts[uid] += 1
            turn += 1
            try:
                conn.request("POST", f"/v1/models/{MODEL}/users/{uid_path(uid)}/observe",
                             body=json.dumps({"item": item, "label": label}).encode(),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
                if resp.status == 200:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                    if isinstance(body, dict) and body.get("accepted") is True and body.get("uid") == uid:
                        self.acked[uid] += 1
                    else:
                        self.bad_acks.append((uid, raw[:200]))
                else:
                    self.note_error(f"HTTP {resp.status}: {raw[:200]!r}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.note_error(f"{type(e).__name__}: {e}")
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
                self.stop.wait(0.05)
        if conn is not None:
            conn.close()

    def note_error(self, what):
        if self.kill_time:
            self.errors_after_kill += 1
        else:
            self.errors_before_kill.append(what)


# --------------------------------------------------------------------------------------------
# The data directory's lock (docs/operations.md, "Where the data lives")


def check_locked(binary, store, holder_pid, deadline, failures):
    """While a server runs, a second writer of its data directory (or database) must fail at
    once, naming the directory and the server's PID (or the database), without a crash."""
    if store[0] == "--store":
        expected = "another Osprey process writes the PostgreSQL database at"
    else:
        expected = f"data directory {store[1]} is in use by another Osprey process (pid {holder_pid})"
    for args in (["serve"] + store + ["--port", "0"], ["retrain"] + store + ["--model", MODEL]):
        what = f"a second `osprey {args[0]}` beside server 1"
        try:
            proc = subprocess.run([binary] + args, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=deadline.cap(15))
        except subprocess.TimeoutExpired:
            failures.append(f"{what} did not fail within 15s (it should not wait for the lock)")
            continue
        err = proc.stderr.decode(errors="replace")
        if proc.returncode <= 0 or expected not in err or "Fatal error" in err:
            failures.append(f"{what}: exit {proc.returncode}, expected a clean failure saying {expected!r}; stderr: {err[-400:]!r}")
        else:
            log(f"{what} refused (exit {proc.returncode}): {err.strip().splitlines()[-1]}")


def check_reader_beside(binary, store, deadline, failures):
    """`osprey models` only reads: it works beside a server that holds the lock."""
    proc = subprocess.run([binary, "models"] + store, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=deadline.cap(15))
    if proc.returncode != 0 or f"{MODEL}  serving v1" not in proc.stdout.decode(errors="replace"):
        failures.append(f"`osprey models` beside a running server: exit {proc.returncode}, "
                        f"stdout {proc.stdout[-300:]!r}, stderr {proc.stderr[-300:]!r}")


# --------------------------------------------------------------------------------------------
# The test


def snapshot_state(port, users):
    """Per-user (user info, predict score for PROBE_ITEM)."""
    return {u: (user_info(port, u), predict(port, u, PROBE_ITEM)) for u in users}


def stop_gracefully(proc, label, deadline, failures):
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=deadline.cap(STOP_TIMEOUT))
    except subprocess.TimeoutExpired:
        failures.append(f"server {label} (pid {proc.pid}) did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM")
        return False
    if code != 0:
        failures.append(f"server {label} exited with code {code} after SIGTERM, expected 0")
        return False
    log(f"server {label}: exited 0 after SIGTERM")
    return True


def start_postgres(args, work, deadline):
    """Starts a throwaway PostgreSQL server in `work/pg`; returns its URL. Its watcher stops it
    once this process is gone, should the cleanup not run."""
    args._postgres = os.path.join(work, "pg")
    os.chmod(work, 0o755)  # the server runs as the `postgres` user when we are root
    proc = subprocess.run(["bash", POSTGRES_SERVER, "start", args._postgres], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=deadline.cap(60), env=dict(os.environ, OWNER_PID=str(os.getpid())))
    if proc.returncode != 0:
        raise Failure(f"scripts/postgres-server.sh start failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-400:]}")
    url = proc.stdout.decode().strip().splitlines()[-1]
    log(f"started PostgreSQL: {url}")
    return url


def stop_postgres(args):
    if getattr(args, "_postgres", None):
        subprocess.run(["bash", POSTGRES_SERVER, "stop", args._postgres], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


def run_test(args, work, deadline, failures):
    binary = args.binary
    if args.postgres:
        store = ["--store", start_postgres(args, work, deadline)]
    else:
        store = ["--data-dir", os.path.join(work, "data")]
    ratings = os.path.join(work, "ratings.csv")
    rng = random.Random(args.seed)

    run_tool([binary, "generate", "--users", "200", "--items", "100", "--ratings", "5000", "--dim", "4",
              "--noise", "0.5", "--seed", "3", "--out", ratings], deadline, "generate")
    run_tool([binary, "train"] + store + ["--model", MODEL, "--ratings", ratings, "--dim", "4",
              "--lambda", "1", "--iterations", "5"], deadline, "train")
    log(f"trained model {MODEL!r} in {store[1]}")

    servers = Servers(binary, store, work, deadline)
    args._servers = servers
    proc1, port1 = servers.start("1")
    check_locked(binary, store, proc1.pid, deadline, failures)

    users = [f"crash-u{i}" for i in range(N_USERS)]
    score_before = {}
    for u in users:
        info = user_info(port1, u)
        if info.get("observations") != 0:
            raise Failure(f"fresh user {u} already has observations: {info}")
        score_before[u] = predict(port1, u, PROBE_ITEM)

    # Load, then SIGKILL mid-stream.
    stop = args._stop
    kill_time = []
    threads = [ClientThread(t, port1, users[t::N_THREADS], args.seed * 1000 + t, stop, kill_time)
               for t in range(N_THREADS)]
    for th in threads:
        th.start()
    delay = rng.uniform(1.5, 3.0)
    time.sleep(delay)
    os.kill(proc1.pid, signal.SIGKILL)
    kill_time.append(time.monotonic())
    log(f"sent SIGKILL to server 1 (pid {proc1.pid}) after {delay:.2f}s of load")
    try:
        code = proc1.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise Failure(f"server 1 (pid {proc1.pid}) still running 10s after SIGKILL")
    if code != -signal.SIGKILL:
        failures.append(f"server 1 exit status {code}, expected -9 (killed by SIGKILL)")
    time.sleep(0.2)  # let in-flight requests fail against the dead server
    stop.set()
    join_until = time.monotonic() + deadline.cap(10)
    for th in threads:
        th.join(timeout=max(0.0, join_until - time.monotonic()))
    alive = [th.name for th in threads if th.is_alive()]
    if alive:
        raise Failure(f"client threads did not stop: {alive}")

    acked, attempts = {}, {}
    errors_before, errors_after, bad_acks = [], 0, []
    for th in threads:
        acked.update(th.acked)
        attempts.update(th.attempts)
        errors_before += th.errors_before_kill
        errors_after += th.errors_after_kill
        bad_acks += th.bad_acks
    total_acked = sum(acked.values())
    total_attempts = sum(attempts.values())
    log(f"load: {total_attempts} observes attempted, {total_acked} acknowledged, "
        f"{errors_after} errors after the kill (expected), {len(errors_before)} errors before it")
    for e in errors_before[:10]:
        log(f"  note: error before the kill: {e}")
    for uid, raw in bad_acks[:10]:
        failures.append(f"observe for {uid} returned 200 with an unexpected body: {raw!r}")
    if total_acked == 0:
        raise Failure("no observation was acknowledged before the kill; the test proved nothing")

    # Restart after the crash (the lock file SIGKILL left behind must not block it) and check
    # every acknowledged observation survived.
    proc2, port2 = servers.start("2", avoid_ports=(port1,))
    check_reader_beside(binary, store, deadline, failures)
    after_crash = snapshot_state(port2, users)
    acked_users = [u for u in users if acked[u] > 0]
    excess = []
    not_moved = []
    for u in users:
        info, score = after_crash[u]
        n = info.get("observations")
        if not isinstance(n, int):
            failures.append(f"{u}: observations is not an integer: {info}")
            continue
        if n < acked[u]:
            failures.append(f"LOST ACKNOWLEDGED OBSERVATIONS: {u} has observations={n} after restart "
                            f"but {acked[u]} were acknowledged ({attempts[u]} attempted)")
        if n > attempts[u]:
            failures.append(f"{u} has observations={n} after restart but only {attempts[u]} were attempted "
                            f"({acked[u]} acknowledged)")
        if acked[u] > 0:
            excess.append(n - acked[u])
            if score == score_before[u]:
                not_moved.append(u)
    for u in not_moved:
        log(f"  note: predict({u}, {PROBE_ITEM}) did not move: {score_before[u]} before, "
            f"{after_crash[u][1]} after {acked[u]} acknowledged observations")
    if len(not_moved) > 0.10 * len(acked_users):
        failures.append(f"predict({PROBE_ITEM}) did not move for {len(not_moved)} of {len(acked_users)} users "
                        f"with acknowledged observations (more than 10%)")
    model = get_ok(port2, f"/v1/models/{MODEL}")
    logged = model.get("observations")
    if not isinstance(logged, int) or not (total_acked <= logged <= total_attempts):
        failures.append(f"model {MODEL} reports {logged} logged observations; expected between "
                        f"{total_acked} (acknowledged) and {total_attempts} (attempted)")
    log(f"after crash + restart: {total_acked} acknowledged observations over {len(acked_users)} users, "
        f"{logged} in the log; per-user excess (logged - acknowledged): "
        f"max {max(excess) if excess else 0}, min {min(excess) if excess else 0}; "
        f"predict moved for {len(acked_users) - len(not_moved)}/{len(acked_users)} users")

    # Graceful stop, then a third start must restore exactly what the second served.
    if not stop_gracefully(proc2, "2", deadline, failures):
        return
    proc3, port3 = servers.start("3", avoid_ports=(port1, port2))
    after_restore = snapshot_state(port3, users)
    mismatches = 0
    differing = set()
    for u in users:
        (info2, score2), (info3, score3) = after_crash[u], after_restore[u]
        for field in ("observations", "running_loss", "bootstrapped"):
            if info2.get(field) != info3.get(field):
                mismatches += 1
                differing.add(u)
                failures.append(f"{u}: {field} was {info2.get(field)!r} before the graceful restart, "
                                f"{info3.get(field)!r} after")
        if score2 != score3:
            mismatches += 1
            differing.add(u)
            failures.append(f"{u}: predict({PROBE_ITEM}) was {score2!r} before the graceful restart, "
                            f"{score3!r} after")
    model3 = get_ok(port3, f"/v1/models/{MODEL}")
    if model3.get("observations") != logged:
        failures.append(f"model {MODEL} logged observations changed across the graceful restart: "
                        f"{logged} -> {model3.get('observations')}")
    log(f"after graceful stop + restart: {len(users) - len(differing)}/{len(users)} users identical "
        f"(observations, running_loss, bootstrapped, predict {PROBE_ITEM}); {mismatches} mismatching values")
    stop_gracefully(proc3, "3", deadline, failures)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/osprey", help="osprey binary (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--postgres", action="store_true",
                        help="keep the stores in a throwaway PostgreSQL server instead of a data directory")
    parser.add_argument("--timeout", type=float, default=120.0, help="overall time limit in seconds (default: %(default)s)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    args.binary = os.path.abspath(args.binary)
    args._servers = None
    args._stop = threading.Event()  # stops the client threads, also on failure
    log(f"crash-test: seed {args.seed} (rerun with --seed {args.seed}), binary {args.binary}")
    if not os.access(args.binary, os.X_OK):
        log(f"FAIL: {args.binary} is not an executable")
        log("crash-test: 0 passed, 1 failed")
        return 1

    deadline = Deadline(args.timeout)

    def on_alarm(signum, frame):
        raise Overtime(f"overall timeout of {args.timeout:g}s reached")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)

    # Last resort if cleanup itself hangs: kill our servers and exit hard.
    def backstop():
        log(f"crash-test: hard timeout ({args.timeout + 20:g}s), killing servers and exiting")
        if args._servers is not None:
            for _, proc, _ in list(args._servers.procs):
                if proc.poll() is None:
                    try:
                        os.kill(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
        log("crash-test: 0 passed, 1 failed")
        os._exit(1)

    hard = threading.Timer(args.timeout + 20, backstop)
    hard.daemon = True
    hard.start()

    work = tempfile.mkdtemp(prefix="osprey-crash-test-")
    log(f"crash-test: working in {work}")
    failures = []
    started = time.monotonic()
    try:
        try:
            run_test(args, work, deadline, failures)
        except (Failure, Overtime) as e:
            failures.append(str(e))
        except OSError as e:
            hint = " (the binary is being rewritten, e.g. by a build; retry)" if e.errno == errno.ETXTBSY else ""
            failures.append(f"unexpected {type(e).__name__}: {e}{hint}")
        except Exception as e:  # noqa: BLE001 - report anything unexpected as a failure
            failures.append(f"unexpected {type(e).__name__}: {e}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        args._stop.set()
        if args._servers is not None:
            args._servers.kill_all()
            if failures:
                args._servers.log_tails()
        stop_postgres(args)
        if args.keep:
            log(f"crash-test: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        hard.cancel()

    elapsed = time.monotonic() - started
    if failures:
        log(f"FAILED ({len(failures)} problem(s), {elapsed:.1f}s):")
        for f in failures[:50]:
            log(f"  - {f}")
        if len(failures) > 50:
            log(f"  ... and {len(failures) - 50} more")
        log("crash-test: 0 passed, 1 failed")
        return 1
    log(f"crash-test: all checks passed in {elapsed:.1f}s")
    log("crash-test: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
