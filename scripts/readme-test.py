#!/usr/bin/env python3
"""Runs the README's tour and quickstart's printed commands against a fresh quickstart server.

Starts `osprey quickstart` in a temporary directory on a free loopback port, waits for its banner,
then runs, in order:
  1. every `curl` command quickstart printed;
  2. every command of the README's "A five-minute tour" (its `sh` blocks: `curl` lines and
     variable assignments such as `B=...` and `E=$(...)`), with the README's address replaced by
     the server's.
Each answer must have a 2xx status (or the status the table ALLOWED below names, with its
reason) and a JSON body (text for /metrics). Where the README shows an answer (a `# {...}` line
after a command), the real answer must have the same top-level keys. So the docs stay true to
the server.

Stops the server it started (SIGTERM, by PID) and removes its directory. Python 3 standard
library only.

Usage: scripts/readme-test.py [--binary .build/debug/osprey]
Prints `readme-test: N passed, M failed` and exits 1 if any command failed.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_BASE = "http://127.0.0.1:8080"

# Commands the README gives as alternatives to the one before them, which the server then refuses
# with this status, on purpose.
ALLOWED = {
    '/jobs/1/cancel': (409, "the job it cancels was waited for: it is done"),
    '/challenger" -d \'{"version":1': (409, "an alternative to the competition the line before started"),
    '-X DELETE "$B/challenger"': (409, "an alternative to the promote before it, which ended the competition"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tour_commands(readme):
    """The tour's commands, each with the answer the README shows after it (or None)."""
    section = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.rstrip()
            if line.startswith("# {") and out and out[-1][1] is None:
                out[-1] = (out[-1][0], line[2:])
            elif line.startswith("curl ") or re.match(r"^[A-Z]+=", line):
                out.append((line, None))
    return out


def expected_keys(example):
    try:
        shown = json.loads(example)
    except ValueError:
        # Abridged examples ("...") are compared on the keys they name.
        return set(re.findall(r'"([a-z_]+)":', example))
    return set(shown) if isinstance(shown, dict) else None


def run(command, env, timeout=120):
    """Runs one command line; returns (status, body) for a curl, (None, value) for an assignment."""
    assignment = re.match(r"^([A-Z]+)=(.*)$", command)
    if assignment:
        name = assignment.group(1)
        value = subprocess.run(["bash", "-c", f'{command}\nprintf %s "${name}"'], env=env, capture_output=True,
                               text=True, timeout=timeout).stdout.strip()
        env[name] = value
        return None, value
    argv = [re.sub(r"\$([A-Z]+)", lambda m: env.get(m.group(1), m.group(0)), a)
            for a in shlex.split(command, comments=True)]
    done = subprocess.run(argv + ["-w", "\n%{http_code}"], capture_output=True, text=True, timeout=timeout)
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body


def check(command, status, body, example):
    """Nothing when the answer is right, else what is wrong."""
    allowed = next((v for k, v in ALLOWED.items() if k in command), None)
    if not 200 <= status < 300 and not (allowed and status == allowed[0]):
        return f"status {status}: {body[:300]}"
    if "/metrics" in command:
        return None if "# TYPE" in body else f"not the Prometheus text format: {body[:200]}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:300]}"
    if example and 200 <= status < 300:
        keys = expected_keys(example)
        if keys and isinstance(answer, dict) and not keys <= set(answer):
            return f"the README shows keys {sorted(keys - set(answer))} the answer lacks: {body[:300]}"
    return None


def busy_port_refusal(binary, work, port):
    """Nothing when `serve` on a taken port fails at once with a clear message, else what is wrong."""
    other = os.path.join(work, "other")
    ratings = os.path.join(work, "small.csv")
    subprocess.run([binary, "generate", "--users", "50", "--items", "20", "--ratings", "500", "--dim", "4",
                    "--out", ratings], check=True, capture_output=True, timeout=120)
    subprocess.run([binary, "train", "--data-dir", other, "--model", "small", "--ratings", ratings, "--dim", "4"],
                   check=True, capture_output=True, timeout=300)
    done = subprocess.run([binary, "serve", "--data-dir", other, "--port", str(port)], capture_output=True, text=True,
                          timeout=60)
    said = done.stdout + done.stderr
    if done.returncode == 0:
        return "exited 0"
    if f"port {port} on 127.0.0.1 is already in use" not in said or "--port" not in said:
        return f"unclear message: {said[-500:]}"
    if "serving" in said or "errno" in said:
        return f"announced itself, or spoke NIO: {said[-500:]}"
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/debug/osprey"))
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="osprey-readme-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out = open(os.path.join(work, "quickstart.log"), "w+")
    server = subprocess.Popen([binary, "quickstart", "--data-dir", os.path.join(work, "data"), "--port", str(port),
                               "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, cwd=work)
    passed, failed = 0, 0
    try:
        deadline = time.monotonic() + 300
        printed = []
        while time.monotonic() < deadline:
            out.seek(0)
            text = out.read()
            if "Ctrl-C stops the server" in text:
                printed = [l.strip() for l in text.splitlines() if l.strip().startswith("curl ")]
                break
            if server.poll() is not None:
                print(f"readme-test: quickstart exited ({server.returncode}):\n{text[-2000:]}")
                return 1
            time.sleep(0.2)
        else:
            print("readme-test: quickstart printed no banner within 300 s")
            return 1
        with open(os.path.join(ROOT, "README.md")) as f:
            tour = tour_commands(f.read())
        commands = [(c, None) for c in printed] + [(c.replace(README_BASE, base), e) for c, e in tour]
        if len(printed) < 5 or len(tour) < 20:
            print(f"readme-test: found {len(printed)} quickstart commands and {len(tour)} README ones; expected more")
            return 1
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for command, example in commands:
            status, body = run(command, env)
            problem = None if status is None else check(command, status, body, example)
            if status is None and not body:
                problem = "the assignment is empty"
            if problem:
                failed += 1
                print(f"FAIL {command}\n     {problem}")
            else:
                passed += 1
        # A second server on the busy port says so in words, and announces nothing first.
        problem = busy_port_refusal(binary, work, port)
        if problem:
            failed += 1
            print(f"FAIL serve on a busy port\n     {problem}")
        else:
            passed += 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["rm", "-rf", work])
    print(f"readme-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
