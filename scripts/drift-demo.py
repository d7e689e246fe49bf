#!/usr/bin/env python3
"""Velox §4.3 end to end: drifting tastes make a served model stale, and it retrains by itself.

Generates ratings whose users' tastes change partway through (`osprey generate --drift`), trains
on the first part, serves with automatic retraining, streams the rest through the bulk
observations API, and prints the windowed prequential loss, the serving version and the stale
flag as it goes. Talks only to 127.0.0.1 and stops the server it started.

Usage: scripts/drift-demo.py [--binary .build/release/osprey] [--users 1000] [--items 500]
       [--ratings 80000] [--drift 1.0] [--retrain-window 30] [--rate OBSERVATIONS_PER_SECOND]
       [--auto-retrain-interval 5]

By default the stream goes as fast as the server takes it; --rate caps it (a real stream is
slower than a retrain), so the automatic retrains can catch up with the drift.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/osprey")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--ratings", type=int, default=80000)
    ap.add_argument("--drift", type=float, default=1.0)
    ap.add_argument("--retrain-window", type=int, default=30)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0, help="observations per second (0: as fast as possible)")
    ap.add_argument("--auto-retrain-interval", type=float, default=5,
                    help="least seconds between automatic retrains (the server's default is 30; the demo compresses hours into a minute)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="osprey-drift-")
    server = None
    try:
        csv = os.path.join(work, "ratings.csv")
        subprocess.run([args.binary, "generate", "--users", str(args.users), "--items", str(args.items),
                        "--ratings", str(args.ratings), "--dim", "5", "--noise", "0.3", "--seed", "4",
                        "--drift", str(args.drift), "--drift-at", "0.6", "--out", csv], check=True)
        lines = open(csv).read().splitlines()[1:]
        split = int(len(lines) * 0.4)
        train = os.path.join(work, "train.csv")
        with open(train, "w") as f:
            f.write("uid,item,label,timestamp\n" + "\n".join(lines[:split]) + "\n")
        data = os.path.join(work, "data")
        subprocess.run([args.binary, "train", "--data-dir", data, "--model", "demo", "--ratings", train,
                        "--dim", "5", "--lambda", "1"], check=True, stderr=subprocess.DEVNULL)
        port = free_port()
        log = open(os.path.join(work, "serve.log"), "w")
        server = subprocess.Popen([args.binary, "serve", "--data-dir", data, "--port", str(port), "--auto-retrain",
                                   "--stale-window", str(args.window), "--stale-threshold", "1.3",
                                   "--retrain-window", str(args.retrain_window),
                                   "--auto-retrain-interval", str(args.auto_retrain_interval)], stderr=log)
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                call(base, "/healthz")
                break
            except Exception:
                time.sleep(0.2)
        stream = lines[split:]
        drift_at = int(len(lines) * 0.6) - split
        pace = f" at {args.rate:g}/s" if args.rate > 0 else " as fast as the server takes them"
        print(f"streaming {len(stream)} observations{pace}; tastes change after {drift_at}")
        print(f"{'streamed':>9} {'seconds':>7} {'version':>7} {'windowed loss':>13} {'baseline':>9}  stale")
        began = time.monotonic()
        for start in range(0, len(stream), args.batch):
            if args.rate > 0:
                ahead = began + start / args.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            batch = []
            for line in stream[start:start + args.batch]:
                uid, item, label, _ = line.split(",")
                batch.append({"uid": uid, "item": item, "label": float(label)})
            call(base, "/v1/models/demo/observations", {"observations": batch})
            done = start + len(batch)
            if done % (args.batch * 10) == 0 or done == len(stream):
                info = call(base, "/v1/models/demo")
                q = info["quality"]
                loss = "-" if q["windowed_loss"] is None else f"{q['windowed_loss']:.3f}"
                base_loss = "-" if q["baseline_loss"] is None else f"{q['baseline_loss']:.3f}"
                marker = "  <- drift" if start < drift_at <= done else ""
                elapsed = time.monotonic() - began
                print(f"{done:>9} {elapsed:>7.1f} {info['version']:>7} {loss:>13} {base_loss:>9}  {q['stale']}{marker}", flush=True)
        versions = call(base, "/v1/models/demo")["versions"]
        print(f"versions: {[v['version'] for v in versions]}")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
