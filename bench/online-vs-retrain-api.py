#!/usr/bin/env python3
"""The Velox §4.2 experiment through the HTTP API: online updates against a full retrain.

Generates drifting ratings (`osprey generate --drift`), splits each user's ratings by time into
an initial half, a streamed 70 % of the rest and a held-out 30 % (as `osprey evaluate` splits
them), trains on the initial part, then for each of `--item-updates off` and `on`: serves a copy
of the data directory, scores the held-out ratings through `predict` (initial), streams the
streamed part through the bulk observations API in time order, scores them again (online),
retrains through the API and scores them once more (full retrain). Prints held-out RMSE and the
share of the retrain's gain the online updates recovered. Talks only to 127.0.0.1 and stops the
servers it started.

Usage: bench/online-vs-retrain-api.py [--binary .build/release/osprey] [--users 2000]
       [--items 1000] [--ratings 100000] [--true-dim 10] [--dim 20] [--seed 1]
"""

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

from apiclient import Server, data_arguments, read_ratings, write_ratings
from apiclient import stream as send


def split(ratings):
    """Each user's ratings by time: the first half initial, 70 % of the rest streamed, the rest held out."""
    by_user = {}
    for i, r in enumerate(ratings):
        by_user.setdefault(r[0], []).append((r[3], i, r))
    train, stream, held = [], [], []
    for uid in sorted(by_user):
        rs = [r for _, _, r in sorted(by_user[uid])]
        half = len(rs) // 2
        streamed = int(round((len(rs) - half) * 0.7))
        train += rs[:half]
        stream += rs[half:half + streamed]
        held += rs[half + streamed:]
    stream.sort(key=lambda r: r[3])
    return train, stream, held


def rmse(client, model, held):
    total, n = 0.0, 0
    for uid, item, label, _ in held:
        try:
            score = client.call("POST", f"/v1/models/{model}/users/{uid}/predict", {"item": item})["score"]
        except RuntimeError as e:
            if " 404 " in str(e):
                continue  # an item the initial model never saw
            raise
        total += (score - label) ** 2
        n += 1
    return math.sqrt(total / max(n, 1)), n


def run(binary, data, item_updates, model, stream, held, log):
    options = ["--item-updates", item_updates, "--validation-fraction", "0", "--prediction-cache", "0", "--item-publish-ms", "100"]
    with Server(binary, data, options, os.path.join(os.path.dirname(data), f"serve-{item_updates}.log")) as client:
        initial, n = rmse(client, model, held)
        log(f"item updates {item_updates}: initial held-out RMSE {initial:.4f} over {n} ratings")
        start = time.time()
        send(client, model, stream)
        log(f"item updates {item_updates}: streamed {len(stream)} observations in {time.time() - start:.1f} s")
        time.sleep(0.5)  # one publication of the items' rows
        online, _ = rmse(client, model, held)
        log(f"item updates {item_updates}: online held-out RMSE {online:.4f}")
        start = time.time()
        job = client.call("POST", f"/v1/models/{model}/retrain", {"wait": True})
        if job.get("phase") != "done":
            raise RuntimeError(f"the retrain did not finish: {job}")
        log(f"item updates {item_updates}: retrain {job.get('phase')} (v{job.get('version')}) in {time.time() - start:.1f} s")
        retrained, _ = rmse(client, model, held)
        log(f"item updates {item_updates}: retrained held-out RMSE {retrained:.4f}")
        return initial, online, retrained


def main():
    ap = data_arguments(__doc__.splitlines()[0])
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    log = lambda line: print(line, flush=True)
    work = tempfile.mkdtemp(prefix="osprey-online-api-")
    try:
        ratings_file = os.path.join(work, "ratings.csv")
        subprocess.run([binary, "generate", "--users", str(args.users), "--items", str(args.items), "--ratings", str(args.ratings),
                        "--dim", str(args.true_dim), "--noise", "0.5", "--drift", "0.5", "--drift-at", "0.5",
                        "--seed", str(args.seed), "--out", ratings_file], check=True, capture_output=True)
        rows = read_ratings(ratings_file)
        train, stream, held = split(rows)
        log(f"split: {len(train)} initial, {len(stream)} streamed, {len(held)} held out")
        train_file = os.path.join(work, "train.csv")
        write_ratings(train_file, train)
        base = os.path.join(work, "base")
        start = time.time()
        subprocess.run([binary, "train", "--data-dir", base, "--model", "m", "--ratings", train_file, "--dim", str(args.dim)],
                       check=True, capture_output=True)
        log(f"trained on the initial part in {time.time() - start:.1f} s")
        results = {}
        for mode in ["off", "on"]:
            data = os.path.join(work, f"data-{mode}")
            shutil.copytree(base, data)
            results[mode] = run(binary, data, mode, "m", stream, held, log)
        print()
        print("| item updates | initial | online | full retrain | recovered | online − retrain |")
        print("|---|---:|---:|---:|---:|---:|")
        for mode, (initial, online, retrained) in results.items():
            recovered = (initial - online) / (initial - retrained) if initial != retrained else float("nan")
            print(f"| {mode} | {initial:.4f} | {online:.4f} | {retrained:.4f} | {recovered * 100:.0f}% | {online - retrained:+.4f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
