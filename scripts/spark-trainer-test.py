#!/usr/bin/env python3
"""`osprey retrain --trainer spark` fits the model the built-in ALS fits, and serves it.

End to end, with a real Spark (PySpark from PyPI in local[2] mode, on the machine's Java):
  1. `osprey generate` writes ratings from a known model; a seeded tenth of them is held out
     (pairs whose user and item stay in the rest).
  2. `osprey train` fits version 1 (given d, λ, iterations) and `osprey retrain` version 2, both
     with the built-in ALS; `osprey serve` scores the held-out pairs: the built-in held-out RMSE.
  3. With that server running, `osprey retrain --trainer spark` is refused with the writer-lock
     error a built-in retrain gets, before any Spark runs.
  4. `osprey retrain --trainer spark` (scripts/spark-train.py, local[2]) makes version 3 of the
     same ratings with the same hyperparameters; served, its held-out RMSE is within 1% of the
     built-in one. Both retrains' times are printed.
  5. Version 3's lineage (API and `osprey models`) names the trainer, the master and the job;
     its d, λ and iterations are version 2's; an observation still moves a prediction.
  6. A job that fails (a master URL Spark cannot parse) and a Python that is not there each give
     a clear error, and version 3 still serves.
  7. With PostgreSQL binaries on the machine, the same retrain on a `--store postgres://` store
     (a throwaway server, scripts/postgres-server.sh) makes a serving version 2 too.

Skipped, with the reason printed, when there is no Java (scripts/install-spark.sh says so).
Bounded in time; stops the servers it started (by PID) and removes its directory. The sizes are
options, so the same script measures larger runs (bench/results/2026-12-06-spark-trainer.md).

Usage: scripts/spark-trainer-test.py [--binary .build/debug/osprey] [--users N --items N --ratings N]
           [--dim 6 --lambda 3 --iterations 10] [--no-postgres]
Prints `spark-trainer-test: N checks passed` or the failures, and exits 1 if any failed.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

from spark_test_support import Checks, Server, http, remaining, run, set_deadline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTGRES_SERVER = os.path.join(ROOT, "scripts", "postgres-server.sh")


def held_out_rmse(server, model, pairs):
    """RMSE of the served scores on (uid, item, label) pairs; None if one was not answered."""
    total = 0.0
    for uid, item, label in pairs:
        status, body = http(server.port, "GET", f"/v1/models/{model}/users/{urllib.parse.quote(uid)}/predict?item={urllib.parse.quote(item)}")
        if status != 200:
            print(f"  predict {uid} {item} answered {status}: {body}")
            return None
        total += (body["score"] - label) ** 2
    return (total / len(pairs)) ** 0.5


def version(server, model, number):
    status, info = http(server.port, "GET", f"/v1/models/{model}")
    return next((v for v in (info or {}).get("versions", []) if v["version"] == number), {})


def split(generated, train_path, seed):
    """Holds out a seeded tenth of the ratings whose user and item keep ratings in the rest."""
    with open(generated) as f:
        header = next(f)
        rows = [line.rstrip("\n").split(",") for line in f if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    users, items = {}, {}
    for r in rows:
        users[r[0]] = users.get(r[0], 0) + 1
        items[r[1]] = items.get(r[1], 0) + 1
    held, kept = [], []
    for r in rows:
        if len(held) < len(rows) // 10 and users[r[0]] > 1 and items[r[1]] > 1:
            users[r[0]] -= 1
            items[r[1]] -= 1
            held.append((r[0], r[1], float(r[2])))
        else:
            kept.append(r)
    with open(train_path, "w") as f:
        f.write(header)
        f.writelines(",".join(r) + "\n" for r in kept)
    return held, len(kept)


def start_postgres(work):
    """A throwaway PostgreSQL server's URL, or None when the machine has no server binaries."""
    pg = os.path.join(work, "pg")
    os.chmod(work, 0o755)  # the server runs as the `postgres` user when we are root
    env = dict(os.environ, OWNER_PID=str(os.getpid()))
    proc = subprocess.run(["bash", POSTGRES_SERVER, "start", pg], capture_output=True, text=True, env=env,
                          timeout=remaining(), stdin=subprocess.DEVNULL)
    if proc.returncode == 3:
        return None
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/postgres-server.sh start failed: {proc.stderr[-400:]}")
    return proc.stdout.strip().splitlines()[-1]


def main():
    set_deadline(900, "spark-trainer-test")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "osprey"))
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--ratings", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--lambda", dest="lam", type=float, default=3.0)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--no-postgres", action="store_true", help="skip step 7")
    args = parser.parse_args()
    global DIM, LAMBDA, ITERATIONS
    DIM, LAMBDA, ITERATIONS = args.dim, args.lam, args.iterations
    binary = os.path.abspath(args.binary)

    if shutil.which("java") is None:
        print("spark-trainer-test: skipped: no java on the PATH (Spark needs a Java runtime; Debian: openjdk-17-jre-headless)")
        return 0
    install = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-spark.sh")], timeout=remaining())
    if install.returncode == 3:
        print("spark-trainer-test: skipped: scripts/install-spark.sh found no Java")
        return 0
    if install.returncode != 0:
        raise RuntimeError("scripts/install-spark.sh failed")

    checks = Checks()
    work = tempfile.mkdtemp(prefix="osprey-spark-trainer-")
    server, pg = None, None
    try:
        # 1. Ratings from a known model, a tenth held out.
        generated, train = os.path.join(work, "generated.csv"), os.path.join(work, "train.csv")
        run([binary, "generate", "--users", str(args.users), "--items", str(args.items), "--ratings", str(args.ratings),
             "--dim", "6", "--noise", "0.5", "--out", generated], "osprey generate")
        held, kept = split(generated, train, seed=7)
        print(f"spark-trainer-test: {kept} ratings to train on, {len(held)} held out")

        # 2. Versions 1 and 2 by the built-in ALS.
        data = os.path.join(work, "data")
        hyper = ["--dim", str(DIM), "--lambda", str(LAMBDA), "--iterations", str(ITERATIONS)]
        run([binary, "train", "--data-dir", data, "--model", "m", "--ratings", train] + hyper, "osprey train")
        built = run([binary, "retrain", "--data-dir", data, "--model", "m"], "osprey retrain")
        server = Server(binary, data, os.path.join(work, "serve.log"))
        v2 = version(server, "m", 2)
        builtin_rmse = held_out_rmse(server, "m", held)
        checks.check(builtin_rmse is not None, "the built-in version answered every held-out pair")

        # 3. A server holds the store: the retrain is refused as a built-in one is.
        refused = run([binary, "retrain", "--data-dir", data, "--model", "m", "--trainer", "spark"],
                      "retrain --trainer spark beside a server", ok_codes=range(1, 256))
        builtin_refused = run([binary, "retrain", "--data-dir", data, "--model", "m"], "retrain beside a server",
                              ok_codes=range(1, 256))
        first = (builtin_refused.stderr.strip().splitlines() or [""])[-1]
        checks.check(first != "" and first in refused.stderr and "spark:" not in refused.stderr,
                     f"beside a server, the Spark retrain gets the writer-lock error ({refused.stderr.strip()[-200:]})")
        server.stop()
        server = None

        # 4. Version 3 on Spark, local[2].
        sparked = run([binary, "retrain", "--data-dir", data, "--model", "m", "--trainer", "spark"], "osprey retrain --trainer spark")
        for step in ("exporting", "running", "spark: read", "training: iteration", "importing", "m v3 now serves"):
            checks.check(step in sparked.stderr, f"the retrain's progress shows `{step}`")
        server = Server(binary, data, os.path.join(work, "serve.log"))
        spark_rmse = held_out_rmse(server, "m", held)
        ok = builtin_rmse is not None and spark_rmse is not None
        checks.check(ok and abs(spark_rmse - builtin_rmse) <= 0.01 * builtin_rmse,
                     f"Spark's held-out RMSE is within 1% of the built-in ALS's ({spark_rmse} vs {builtin_rmse})")
        if ok:
            v3 = version(server, "m", 3)
            print(f"spark-trainer-test: held-out RMSE builtin {builtin_rmse:.4f}, spark {spark_rmse:.4f}; "
                  f"training RMSE builtin {v2.get('training_rmse'):.4f}, spark {v3.get('training_rmse'):.4f}; "
                  f"retrain command builtin {built.seconds:.1f} s, spark {sparked.seconds:.1f} s; "
                  f"training step builtin {v2.get('training_seconds'):.2f} s, spark {v3.get('training_seconds'):.2f} s")

        # 5. Lineage, hyperparameters, online learning.
        v3 = version(server, "m", 3)
        source = v3.get("source") or ""
        checks.check(v3.get("status") == "serving" and v3.get("parent") == 2 and v3.get("trigger") == "request",
                     f"version 3 serves, parent 2, trigger request ({v3.get('status')}, {v3.get('parent')}, {v3.get('trigger')})")
        checks.check(source.startswith("spark: master local[2], job ") and "spark-train.py" in source,
                     f"version 3's source names Spark, the master and the job ({source})")
        checks.check(v2.get("source") is None, f"the built-in version has no source ({v2.get('source')})")
        checks.check((v3.get("dimension"), v3.get("lambda"), v3.get("iterations"), v3.get("scaled_lambda")) == (DIM, LAMBDA, ITERATIONS, False),
                     f"version 3 has version 2's d, λ, iterations ({v3.get('dimension')}, {v3.get('lambda')}, {v3.get('iterations')})")
        uid, item, _ = held[0]
        path = f"/v1/models/m/users/{uid}/predict?item={item}"
        before = http(server.port, "GET", path)[1]["score"]
        status, _ = http(server.port, "POST", f"/v1/models/m/users/{uid}/observe", {"item": item, "label": before + 3})
        after = http(server.port, "GET", path)[1]["score"]
        checks.check(status == 200 and after > before + 0.01, f"an observation moved the prediction up ({before:.4f} -> {after:.4f})")
        server.stop()
        server = None
        models = run([binary, "models", "--data-dir", data], "osprey models").stdout
        checks.check("spark: master local[2]" in models, "`osprey models` shows the trainer")

        # 6. Failures leave version 3 serving.
        bad = run([binary, "retrain", "--data-dir", data, "--model", "m", "--trainer", "spark", "--spark-master", "nonsense://x"],
                  "retrain with a bad master", ok_codes=range(1, 256))
        checks.check("the Spark job" in bad.stderr and "exited" in bad.stderr and "nonsense://x" in bad.stderr
                     and "Master must" in bad.stderr,
                     f"a failing job says so with its stderr's tail ({bad.stderr.strip()[-300:]})")
        missing = run([binary, "retrain", "--data-dir", data, "--model", "m", "--trainer", "spark", "--spark-python", "/nonexistent/python"],
                      "retrain without the Python", ok_codes=range(1, 256))
        checks.check("scripts/install-spark.sh" in missing.stderr, f"a missing Python says to install PySpark ({missing.stderr.strip()})")
        models = run([binary, "models", "--data-dir", data], "osprey models").stdout
        checks.check("serving v3" in models and "  v4  " not in models, "version 3 still serves after the failures")

        # 7. The same on PostgreSQL.
        url = None if args.no_postgres else start_postgres(work)
        if url is None:
            print("spark-trainer-test: step 7 skipped: no PostgreSQL server binaries" if not args.no_postgres else
                  "spark-trainer-test: step 7 skipped (--no-postgres)")
        else:
            pg = os.path.join(work, "pg")
            run([binary, "train", "--store", url, "--model", "m", "--ratings", train] + hyper, "osprey train --store")
            run([binary, "retrain", "--store", url, "--model", "m", "--trainer", "spark"], "osprey retrain --store --trainer spark")
            models = run([binary, "models", "--store", url], "osprey models --store").stdout
            checks.check("serving v2" in models and "spark: master local[2]" in models,
                         f"on PostgreSQL, the Spark version serves ({models.strip()})")
    finally:
        if server:
            server.stop()
        if pg:
            subprocess.run(["bash", POSTGRES_SERVER, "stop", pg], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    if checks.failed:
        print(f"spark-trainer-test: {len(checks.failed)} of {checks.passed + len(checks.failed)} checks failed")
        return 1
    print(f"spark-trainer-test: {checks.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
