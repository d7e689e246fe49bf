#!/usr/bin/env python3
"""Fits Osprey's ALS model on Spark: the batch layer of `osprey retrain --trainer spark`.

The same model as the built-in ALS (Sources/OspreyMath/ALS.swift): global mean μ, user and item
biases folded into the vectors, `prediction(u, i) = μ + b_i + [p_u; c_u] · [q_i; 1]`, fitted by
alternating ridge solves — per user given the items' features `[q_i; 1]` and offsets `μ + b_i`,
then per item given the users' features `[p_u; 1]` and offsets `μ + c_u` — with penalty λ on
every weight (λ·n for a row of n ratings with --scale-lambda), `--iterations` times, ending on a
user step. The items start from the built-in's draws (SplitMix64 seeded with --seed, in order of
first appearance in RATINGS), so both fits start alike. Spark's own ALS has no biases, so the solves are done here: ratings are grouped by
user and by item in RDDs, the other side's factors are broadcast, and each row's (d+1)×(d+1)
ridge system is solved with numpy on the executors. The driver holds one side's factors at a
time: users × (d + 1) floats.

Reads RATINGS, a CSV file with the header `uid,item,label` (what osprey exports), and writes to
OUT (created):
  items.json  one JSON line per item: {"id": ..., "features": [q_i..., 1], "offset": μ + b_i}
  users.json  one JSON line per user: {"id": ..., "features": [p_u..., c_u]}
the form `osprey import` reads (Sources/OspreyModel/Data/FactorsReader.swift). Progress goes to
stdout, one line a step; errors to stderr.

    .venv-spark/bin/python scripts/spark-train.py RATINGS OUT --dim 20 --lambda 5 \\
        [--scale-lambda] [--iterations 10] [--seed 1] [--master local[2]]

With a cluster master, RATINGS must be readable by the executors (a shared filesystem) and
their Python must have numpy.
"""

import argparse
import json
import math
import os
import sys
import time

MASK = (1 << 64) - 1


class SplitMix64:
    """Sources/OspreyMath/SplitMix64.swift, draw for draw: the built-in ALS's initialization."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def gaussian(self):
        u1 = self.uniform()
        while u1 <= sys.float_info.min:
            u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def solve_rows(rows, features, lam, scaled):
    """Each row's ridge solution x = (λ_r I + Σ f fᵀ)⁻¹ Σ f (y − offset) over its ratings.

    `rows` yields (id, [(other id, label), ...]); `features` maps the other side's ids to
    (feature vector, offset). Runs on an executor, one partition at a time.
    """
    import numpy as np

    for key, entries in rows:
        f = np.array([features[j][0] for j, _ in entries], dtype=np.float64)
        t = np.array([y - features[j][1] for j, y in entries], dtype=np.float64)
        a = f.T @ f
        a[np.diag_indices_from(a)] += lam * (len(entries) if scaled else 1)
        yield key, np.linalg.solve(a, f.T @ t)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ratings", help="CSV with the header uid,item,label")
    parser.add_argument("out", help="directory for items.json and users.json (created)")
    parser.add_argument("--dim", type=int, required=True, help="latent factors d (vectors have d + 1 entries)")
    parser.add_argument("--lambda", dest="lam", type=float, required=True, help="ridge penalty λ")
    parser.add_argument("--scale-lambda", action="store_true", help="penalize each row by λ times its number of ratings")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1, help="SplitMix64 seed of the item features' initialization")
    parser.add_argument("--master", default="local[2]", help="Spark master URL (default local[2])")
    args = parser.parse_args()
    if args.dim < 1 or args.iterations < 1 or not args.lam > 0:
        sys.exit("spark-train: --dim and --iterations must be at least 1 and --lambda positive")

    import numpy as np
    from pyspark.sql import SparkSession

    # Local executors run this interpreter (it has numpy), not whatever `python3` is on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    start = time.monotonic()
    spark = (SparkSession.builder.master(args.master).appName("osprey-spark-train")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    sc = spark.sparkContext
    try:
        frame = (spark.read.option("header", True).option("escape", '"')
                 .schema("uid STRING, item STRING, label DOUBLE").csv(args.ratings))
        # Indexed in file order: the built-in ALS numbers items in order of first appearance.
        indexed = frame.rdd.zipWithIndex().map(lambda p: (p[0].uid, p[0].item, p[0].label, p[1])).cache()
        ratings = indexed.map(lambda r: (r[0], r[1], r[2])).cache()
        count = ratings.count()
        if count == 0:
            sys.exit("spark-train: no ratings to train on")
        mean = ratings.map(lambda r: r[2]).sum() / count
        by_user = ratings.map(lambda r: (r[0], (r[1], r[2]))).groupByKey().mapValues(list).cache()
        by_item = ratings.map(lambda r: (r[1], (r[0], r[2]))).groupByKey().mapValues(list).cache()
        d, lam, scaled = args.dim, args.lam, args.scale_lambda
        print(f"read {count} ratings, {by_user.count()} users, {by_item.count()} items; μ = {mean:.4f}; "
              f"d={d}, λ={lam:g}{'·n' if scaled else ''}, {args.iterations} iterations on {sc.master}", flush=True)

        # Items start small and random, with the constant-1 bias feature and offsets μ + b_i = μ:
        # the built-in's draws (Float(gaussian) * 0.1 in 32 bits), item by item in first-seen order.
        first_seen = indexed.map(lambda r: (r[1], r[3])).reduceByKey(min).collect()
        indexed.unpersist()
        rng, items = SplitMix64(args.seed), {}
        for item, _ in sorted(first_seen, key=lambda p: p[1]):
            draws = [np.float32(rng.gaussian()) * np.float32(0.1) for _ in range(d)]
            items[item] = (np.array(draws + [1.0], dtype=np.float64), mean)

        def user_step(items):
            shared = sc.broadcast(items)
            solved = by_user.mapPartitions(lambda rows: solve_rows(rows, shared.value, lam, scaled)).collectAsMap()
            shared.destroy()
            return solved

        for iteration in range(1, args.iterations + 1):
            users = user_step(items)
            # The users as the item step sees them: features [p_u; 1], offsets μ + c_u.
            shared = sc.broadcast({u: (np.append(x[:d], 1.0), mean + x[d]) for u, x in users.items()})
            solved = by_item.mapPartitions(lambda rows: solve_rows(rows, shared.value, lam, scaled)).collectAsMap()
            shared.destroy()
            items = {i: (np.append(x[:d], 1.0), mean + x[d]) for i, x in solved.items()}
            if iteration == args.iterations:
                # End on a user step, as the built-in ALS does: each user's weights are then
                # exactly its ridge solution under the final items.
                users = user_step(items)
            shared_users, shared_items = sc.broadcast(users), sc.broadcast(items)
            squared = ratings.map(lambda r: (r[2] - shared_items.value[r[1]][1]
                                             - float(shared_users.value[r[0]] @ shared_items.value[r[1]][0])) ** 2).sum()
            shared_users.destroy()
            shared_items.destroy()
            print(f"iteration {iteration}/{args.iterations}: training RMSE {(squared / count) ** 0.5:.4f} "
                  f"({time.monotonic() - start:.1f} s)", flush=True)

        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "items.json"), "w") as f:
            for i, (features, offset) in items.items():
                f.write(json.dumps({"id": i, "features": features.tolist(), "offset": offset}) + "\n")
        with open(os.path.join(args.out, "users.json"), "w") as f:
            for u, x in users.items():
                f.write(json.dumps({"id": u, "features": x.tolist()}) + "\n")
        print(f"wrote {len(items)} items and {len(users)} users to {args.out} ({time.monotonic() - start:.1f} s)", flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
