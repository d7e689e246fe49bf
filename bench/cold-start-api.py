#!/usr/bin/env python3
"""New items through the server (BENCHMARKS.md, "Items"): held-out RMSE on items never seen in
training, scored through `predict` (a) as the mean trained item, by a model trained without
attributes, (b) from their attributes, by a model trained with them, and (c) by that model after
each new item's first `--first` ratings arrived through `observe` with `--item-updates on` (the
items and their raters learn them online).

Generates ratings and items whose attributes explain a share of each item's vector
(`osprey generate --items-out --attribute-share`), holds every tenth item out of training (ids
ending in 7), trains two models on the rest (with and without `--items`), and scores each new
item's ratings after its first `--first` (by time) in all three ways. Talks only to 127.0.0.1 and
stops the servers it started.

Usage: bench/cold-start-api.py [--binary .build/release/osprey] [--users 2000] [--items 1000]
       [--ratings 100000] [--true-dim 10] [--dim 20] [--share 0.6] [--first 5] [--seed 1]
"""

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

from apiclient import Server, data_arguments, read_ratings, stream, write_ratings


def rmse(client, model, ratings):
    total = 0.0
    for uid, item, label, _ in ratings:
        score = client.call("POST", f"/v1/models/{model}/users/{uid}/predict", {"item": item})["score"]
        total += (score - label) ** 2
    return math.sqrt(total / max(len(ratings), 1))


def main():
    ap = data_arguments(__doc__.splitlines()[0])
    ap.add_argument("--share", type=float, default=0.6)
    ap.add_argument("--first", type=int, default=5)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    log = lambda line: print(line, flush=True)
    work = tempfile.mkdtemp(prefix="osprey-cold-start-api-")
    try:
        ratings_file, items_file = os.path.join(work, "ratings.csv"), os.path.join(work, "items.csv")
        subprocess.run([binary, "generate", "--users", str(args.users), "--items", str(args.items), "--ratings", str(args.ratings),
                        "--dim", str(args.true_dim), "--noise", "0.5", "--seed", str(args.seed), "--out", ratings_file,
                        "--items-out", items_file, "--attribute-share", str(args.share)], check=True, capture_output=True)
        rows = read_ratings(ratings_file)
        is_new = lambda item: item.endswith("7")
        train = [r for r in rows if not is_new(r[1])]
        by_item = {}
        for r in sorted((r for r in rows if is_new(r[1])), key=lambda r: r[3]):
            by_item.setdefault(r[1], []).append(r)
        usable = {item: rs for item, rs in by_item.items() if len(rs) > args.first}
        first = [r for rs in usable.values() for r in rs[:args.first]]
        first.sort(key=lambda r: r[3])
        scored = [r for rs in usable.values() for r in rs[args.first:]]
        log(f"{len(train)} training ratings; {len(usable)} new items, {len(first)} first ratings, {len(scored)} scored")
        train_file = os.path.join(work, "train.csv")
        write_ratings(train_file, train)
        plain, attributed = os.path.join(work, "plain"), os.path.join(work, "attributed")
        subprocess.run([binary, "train", "--data-dir", plain, "--model", "m", "--ratings", train_file, "--dim", str(args.dim)],
                       check=True, capture_output=True)
        trained = subprocess.run([binary, "train", "--data-dir", attributed, "--model", "m", "--ratings", train_file,
                                  "--items", items_file, "--dim", str(args.dim)], check=True, capture_output=True, text=True)
        log(next((line for line in (trained.stdout + trained.stderr).splitlines() if "attribute map:" in line), "no attribute map line"))

        options = ["--validation-fraction", "0", "--prediction-cache", "0"]
        with Server(binary, plain, options, os.path.join(work, "serve-plain.log")) as client:
            # Without attributes the new items are catalogue items scored as the mean trained item.
            client.call("POST", "/v1/models/m/items", {"items": [{"id": item, "attributes": {}} for item in usable]})
            sources = {client.call("GET", f"/v1/models/m/items/{item}")["source"] for item in usable}
            mean = rmse(client, "m", scored)
        log(f"(a) mean item: {mean:.4f} (sources {sorted(sources)})")
        with Server(binary, attributed, options + ["--item-updates", "on", "--item-publish-ms", "100"],
                    os.path.join(work, "serve-attributed.log")) as client:
            sources = {client.call("GET", f"/v1/models/m/items/{item}")["source"] for item in usable}
            attributes = rmse(client, "m", scored)
            log(f"(b) attributes: {attributes:.4f} (sources {sorted(sources)})")
            stream(client, "m", first)
            time.sleep(0.5)  # one publication of the items' rows
            sources = {client.call("GET", f"/v1/models/m/items/{item}")["source"] for item in usable}
            online = rmse(client, "m", scored)
            log(f"(c) attributes + {args.first} online: {online:.4f} (sources {sorted(sources)})")
        print()
        print(f"| attribute share | new items | ratings scored | (a) mean item | (b) attributes | (c) attributes + {args.first} online |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| {args.share} | {len(usable)} | {len(scored)} | {mean:.4f} | {attributes:.4f} | {online:.4f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
