#!/usr/bin/env python3
"""Retrains in a worker process (`osprey serve`'s default, `--retrain-in worker`;
docs/operations.md, "Retraining in a worker"), against the real binary:

1. Same answers. Two copies of one data directory get the same observations; one server
   retrains in a worker (started without `--retrain-in`: the default), the other in its own
   process (`--retrain-in server`). Every user's prediction for three items must be the same, to
   the last digit; the first server logs its `retrain steps` with a `worker` step, the second
   with the steps it ran itself.
2. Cancel. A retrain of a model trained with many ALS iterations is cancelled while its worker
   trains: the job ends `cancelled`, the worker process is gone, nothing is stored and the
   serving version stays.
3. The server dies. The server is SIGKILLed while its worker trains: the worker stops by itself
   at its next check (it writes only beside the process that started it), and a restarted server
   serves the version it served before.

Only talks to 127.0.0.1, only signals the processes it started (by PID); bounded in time.
Python 3 standard library.

Usage: scripts/retrain-worker-test.py [--binary .build/debug/osprey]
Prints `retrain-worker-test: N passed, M failed` and exits 1 if a check failed.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from process_support import HOST, children, free_port, stop

DEADLINE = time.monotonic() + 600


def call(port, method, path, body=None, timeout=10):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read().decode()
        return r.status, (json.loads(text) if text else None)
    finally:
        conn.close()


def wait_until(predicate, seconds, what):
    end = min(time.monotonic() + seconds, DEADLINE)
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def serve(binary, data, mode, log):
    port = free_port()
    chosen = [] if mode == "worker" else ["--retrain-in", mode]  # the worker is the default
    server = subprocess.Popen([binary, "serve", "--data-dir", data, "--port", str(port), *chosen,
                               "--log-level", "info"], stdout=subprocess.DEVNULL, stderr=log)

    def healthy():
        if server.poll() is not None:
            raise RuntimeError(f"the server on {data} exited ({server.returncode})")
        try:
            return call(port, "GET", "/healthz", timeout=1)[0] == 200
        except OSError:
            return False
    wait_until(healthy, 60, f"the server on {data}")
    return server, port


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def thread_nices(pid):
    """The nice value of each thread of `pid` (from /proc)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                out.append(int(f.read().rsplit(") ", 1)[1].split()[16]))
    except (OSError, IndexError, ValueError):
        pass
    return out


def retrain(port, model):
    status, body = call(port, "POST", f"/v1/models/{model}/retrain")
    if status != 202:
        raise RuntimeError(f"retrain of {model} answered {status}: {body}")
    return body["job"]["id"] if "job" in body else body["id"]


def job(port, model, number):
    return call(port, "GET", f"/v1/models/{model}/jobs/{number}")[1]


def finished(port, model, number, seconds=120):
    return wait_until(lambda: (lambda j: j if j["phase"] in ("done", "failed", "cancelled") else None)(job(port, model, number)),
                      seconds, f"job {number} of {model}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/osprey")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    passed, failed = 0, 0

    def check(ok, what):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if ok:
            passed += 1
        else:
            failed += 1

    work = tempfile.mkdtemp(prefix="osprey-retrain-worker-")
    servers = []
    try:
        ratings, slow = os.path.join(work, "ratings.csv"), os.path.join(work, "slow.csv")
        run = lambda cmd: subprocess.run([binary] + cmd, check=True, capture_output=True, timeout=300)
        run(["generate", "--users", "2000", "--items", "300", "--ratings", "40000", "--seed", "3", "--out", ratings])
        run(["generate", "--users", "3000", "--items", "500", "--ratings", "100000", "--seed", "5", "--out", slow])
        first = os.path.join(work, "worker")
        run(["train", "--data-dir", first, "--model", "m", "--ratings", ratings, "--dim", "8", "--lambda", "0.1"])
        run(["train", "--data-dir", first, "--model", "slow", "--ratings", slow, "--dim", "16", "--lambda", "0.1",
             "--iterations", "400"])
        second = os.path.join(work, "server")
        shutil.copytree(first, second)

        # 1. Same answers.
        logs = {mode: open(os.path.join(work, f"{mode}.log"), "w+") for mode in ("worker", "server")}
        ports = {}
        for mode, data in (("worker", first), ("server", second)):
            server, port = serve(binary, data, mode, logs[mode])
            servers.append(server)
            ports[mode] = (server, port)
        for mode, (_, port) in ports.items():
            for n in range(120):
                uid = f"u{n * 7 % 2000}" if n % 4 else f"new{n}"
                status, body = call(port, "POST", f"/v1/models/m/users/{uid}/observe", {"item": f"i{n % 50}", "label": 1 + n % 5})
                if status != 200:
                    raise RuntimeError(f"observe answered {status}: {body}")
        jobs = {mode: finished(port, "m", retrain(port, "m")) for mode, (_, port) in ports.items()}
        check(all(j["phase"] == "done" and j["version"] == 2 for j in jobs.values()), f"both retrains done as version 2: {jobs}")
        differ = []
        for n in range(0, 2000, 7):
            for item in ("i1", "i20", "i299"):
                path = f"/v1/models/m/users/u{n}/predict?item={item}"
                a, b = call(ports["worker"][1], "GET", path)[1], call(ports["server"][1], "GET", path)[1]
                if a != b:
                    differ.append((path, a, b))
        check(not differ, f"{3 * len(range(0, 2000, 7))} predictions the same from either retrain ({len(differ)} differ: {differ[:2]})")
        steps = {}
        for mode, log in logs.items():
            log.flush()
            log.seek(0)
            steps[mode] = [line for line in log.read().splitlines() if "retrain steps" in line]
        check(len(steps["worker"]) == 1 and "seconds.worker=" in steps["worker"][0] and "seconds.gather=" not in steps["worker"][0],
              f"a server started without --retrain-in retrains in a worker (logs a `worker` step): {steps['worker']}")
        check(len(steps["server"]) == 1 and "seconds.gather=" in steps["server"][0] and "seconds.worker=" not in steps["server"][0],
              f"--retrain-in server gathers and trains in the server: {steps['server']}")
        for mode in ("server",):
            stop(ports[mode][0])

        # 2. Cancel while the worker trains.
        server, port = ports["worker"]
        number = retrain(port, "slow")
        wait_until(lambda: job(port, "slow", number)["iteration"] >= 2, 120, "the slow retrain's second iteration")
        workers = [c for c in children(server.pid) if "retrain-worker" in command_line(c)]
        check(len(workers) == 1, f"one worker process while it trains: {workers}")
        nices = [n for w in workers for n in thread_nices(w)]
        server_nice = min(thread_nices(server.pid) or [0])
        check(nices and min(nices) >= server_nice + 10,
              f"every thread of the worker runs 10 nice levels below the server ({server_nice}): {sorted(set(nices))}")
        status, body = call(port, "POST", f"/v1/models/slow/jobs/{number}/cancel")
        check(status == 200, f"cancel answered {status}: {body}")
        ended = finished(port, "slow", number, 30)
        check(ended["phase"] == "cancelled", f"the job ends cancelled: {ended['phase']}")
        check(all(not alive(w) for w in workers), "the worker process is gone")
        info = call(port, "GET", "/v1/models/slow")[1]
        check(info["version"] == 1 and [v["version"] for v in info["versions"]] == [1],
              f"nothing stored, version 1 serves: {[v['version'] for v in info['versions']]}")

        # 3. The server dies while its worker trains.
        number = retrain(port, "slow")
        wait_until(lambda: job(port, "slow", number)["iteration"] >= 2, 120, "the slow retrain's second iteration")
        workers = [c for c in children(server.pid) if "retrain-worker" in command_line(c)]
        server.kill()
        server.wait()
        started = time.monotonic()
        try:
            # Its ALS has ~400 iterations (seconds) to go: it must stop at its next check.
            gone = wait_until(lambda: all(not alive(w) for w in workers), 2, "the orphaned worker to stop")
        except RuntimeError:
            gone = False
            for w in workers:
                os.kill(w, signal.SIGKILL)
        check(len(workers) == 1 and gone, f"the orphaned worker stopped by itself in {time.monotonic() - started:.1f} s")
        again, port = serve(binary, first, "worker", logs["worker"])
        servers.append(again)
        info = call(port, "GET", "/v1/models/slow")[1]
        check(info["version"] == 1 and [v["version"] for v in info["versions"]] == [1],
              f"a restarted server serves version 1, and the worker stored nothing: {[v['version'] for v in info['versions']]}")
        stop(again)
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"retrain-worker-test: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
