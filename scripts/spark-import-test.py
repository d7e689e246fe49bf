#!/usr/bin/env python3
"""A Spark ALSModel, exported and imported, serves the scores Spark gives, and learns on.

End to end, with a real Spark (PySpark from PyPI in local[2] mode, on the machine's Java):
  1. `osprey generate` writes ratings; they are renamed to integer ids (Spark's ALS needs them).
  2. Spark fits an ALSModel on them and saves it; the same job writes Spark's own predictions for
     a sample of (user, item) pairs and its RMSE on the ratings.
  3. scripts/spark-als-export.py writes the saved model's factors as JSON lines.
  4. `osprey import` makes them version 1 of a new model (users' weights imported, with the
     ratings as history, regParam with --scale-lambda, as Spark penalizes).
  5. `osprey serve` answers predict for every sampled pair with Spark's score; the version's
     lineage says `import` and names the files; its RMSE on the ratings is Spark's.
  6. An observation moves its user's prediction (online learning goes on from Spark's weights).
  7. An import of the items alone onto the existing model makes version 2 (parent 1): its users
     are fitted to the ratings and the log under Spark's items, close to Spark's own users.
  8. A factors file with a bad line is refused, naming the line, and nothing is stored.

Skipped, with the reason printed, when there is no Java (scripts/install-spark.sh says so).
Bounded in time; stops the servers it started (by PID) and removes its directory.

Usage: scripts/spark-import-test.py [--binary .build/debug/osprey]
Prints `spark-import-test: N checks passed` or the failures, and exits 1 if any failed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from spark_test_support import Checks, Server, http, remaining, run, set_deadline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv-spark", "bin", "python")
RANK, REG_PARAM, ITERATIONS = 8, 0.05, 12

SPARK_JOB = r"""
import json, sys
from pyspark.sql import SparkSession
from pyspark.ml.recommendation import ALS
ratings_path, model_path, out_path, rank, reg, iterations = sys.argv[1:7]
spark = SparkSession.builder.master("local[2]").appName("osprey-import-test").config("spark.ui.enabled", "false").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
df = spark.read.csv(ratings_path, header=True, inferSchema=True)
als = ALS(rank=int(rank), maxIter=int(iterations), regParam=float(reg), userCol="userId", itemCol="movieId",
          ratingCol="rating", seed=1)
model = als.fit(df)
model.write().overwrite().save(model_path)
scored = model.transform(df).collect()
rmse = (sum((r["prediction"] - r["rating"]) ** 2 for r in scored) / len(scored)) ** 0.5
users = sorted({r["userId"] for r in scored})[:40]
items = sorted({r["movieId"] for r in scored})[:25]
pairs = spark.createDataFrame([(u, i) for u in users for i in items], ["userId", "movieId"])
sample = [(r["userId"], r["movieId"], r["prediction"]) for r in model.transform(pairs).collect()]
json.dump({"rmse": rmse, "pairs": sample}, open(out_path, "w"))
spark.stop()
"""


def main():
    set_deadline(600, "spark-import-test")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "osprey"))
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)

    if shutil.which("java") is None:
        print("spark-import-test: skipped: no java on the PATH (Spark needs a Java runtime; Debian: openjdk-17-jre-headless)")
        return 0
    install = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-spark.sh")], timeout=remaining())
    if install.returncode == 3:
        print("spark-import-test: skipped: scripts/install-spark.sh found no Java")
        return 0
    if install.returncode != 0:
        raise RuntimeError("scripts/install-spark.sh failed")

    checks = Checks()
    work = tempfile.mkdtemp(prefix="osprey-spark-")
    server = None
    try:
        # 1. Ratings with integer ids.
        generated = os.path.join(work, "generated.csv")
        run([binary, "generate", "--users", "300", "--items", "150", "--ratings", "15000", "--dim", "6", "--out", generated],
            "osprey generate")
        ratings = os.path.join(work, "ratings.csv")
        with open(generated) as src, open(ratings, "w") as dst:
            next(src)
            dst.write("userId,movieId,rating,timestamp\n")
            for line in src:
                uid, item, label, ts = line.strip().split(",")
                dst.write(f"{uid[1:]},{item[1:]},{label},{ts}\n")

        # 2. Spark fits and saves an ALSModel, and scores a sample.
        model_dir, spark_out = os.path.join(work, "als-model"), os.path.join(work, "spark.json")
        job = os.path.join(work, "job.py")
        with open(job, "w") as f:
            f.write(SPARK_JOB)
        started = time.monotonic()
        spark_job = [VENV_PYTHON, job, ratings, model_dir, spark_out, str(RANK), str(REG_PARAM), str(ITERATIONS)]
        try:
            run(spark_job, "the Spark ALS job")
        except RuntimeError as e:
            # A JVM that fails to start (a port or a temp file taken) is not what this tests: once more.
            print(f"spark-import-test: {e}; running it once more", flush=True)
            run(spark_job, "the Spark ALS job")
        spark = json.load(open(spark_out))
        print(f"spark-import-test: Spark fitted rank {RANK} in {time.monotonic() - started:.1f} s, RMSE on the ratings {spark['rmse']:.4f}")

        # 3. Export.
        factors = os.path.join(work, "factors")
        run([VENV_PYTHON, os.path.join(ROOT, "scripts", "spark-als-export.py"), model_dir, factors], "spark-als-export.py")
        checks.check(os.path.isdir(os.path.join(factors, "items")) and os.path.isdir(os.path.join(factors, "users")),
                     "the export wrote items/ and users/")

        # 4. Import as version 1 of a new model.
        data = os.path.join(work, "data")
        items_dir, users_dir = os.path.join(factors, "items"), os.path.join(factors, "users")
        run([binary, "import", "--data-dir", data, "--model", "spark", "--items", items_dir, "--users", users_dir,
             "--ratings", ratings, "--lambda", str(REG_PARAM), "--scale-lambda"], "osprey import (new model)")

        # 5. Served scores are Spark's; lineage and RMSE.
        server = Server(binary, data, os.path.join(work, "serve.log"))
        worst, answered = 0.0, 0
        for uid, item, score in spark["pairs"]:
            status, body = http(server.port, "GET", f"/v1/models/spark/users/{uid}/predict?item={item}")
            if status == 200:
                answered += 1
                worst = max(worst, abs(body["score"] - score))
        checks.check(answered == len(spark["pairs"]), f"predict answered {answered} of {len(spark['pairs'])} pairs")
        checks.check(worst <= 1e-3, f"served scores equal Spark's (largest difference {worst:.2e})")
        print(f"spark-import-test: {len(spark['pairs'])} scores, largest difference from Spark's {worst:.2e}")
        status, info = http(server.port, "GET", "/v1/models/spark")
        v1 = next((v for v in info.get("versions", []) if v["version"] == 1), {})
        checks.check(v1.get("trigger") == "import", f"version 1's trigger is import ({v1.get('trigger')})")
        checks.check(items_dir in (v1.get("source") or "") and users_dir in (v1.get("source") or ""),
                     f"version 1's source names the files ({v1.get('source')})")
        checks.check(v1.get("dimension") == RANK, f"version 1's dimension is Spark's rank ({v1.get('dimension')})")
        rmse = v1.get("training_rmse")
        checks.check(rmse is not None and abs(rmse - spark["rmse"]) < 1e-3,
                     f"version 1's RMSE on its ratings is Spark's ({rmse} vs {spark['rmse']:.4f})")

        # 6. Online learning goes on from Spark's weights.
        uid, item, score = spark["pairs"][0]
        status, _ = http(server.port, "POST", f"/v1/models/spark/users/{uid}/observe", {"item": str(item), "label": score + 3})
        checks.check(status == 200, f"observe answered {status}")
        status, after = http(server.port, "GET", f"/v1/models/spark/users/{uid}/predict?item={item}")
        checks.check(status == 200 and after["score"] > score + 0.01,
                     f"an observation moved the user's score up ({score:.4f} -> {after.get('score')})")
        server.stop()
        server = None

        # 7. The items alone, onto the existing model: version 2, users fitted.
        out = run([binary, "import", "--data-dir", data, "--model", "spark", "--items", items_dir], "osprey import (new version)")
        checks.check("spark v2 now serves" in out.stderr, "the import says v2 serves")
        server = Server(binary, data, os.path.join(work, "serve.log"))
        status, info = http(server.port, "GET", "/v1/models/spark")
        v2 = next((v for v in info.get("versions", []) if v["version"] == 2), {})
        checks.check(v2.get("status") == "serving" and v2.get("parent") == 1 and v2.get("trigger") == "import",
                     f"version 2 serves, parent 1, trigger import ({v2})")
        checks.check(v2.get("lambda") == REG_PARAM and v2.get("scaled_lambda") is True,
                     f"version 2 keeps the serving version's penalty ({v2.get('lambda')}, scaled {v2.get('scaled_lambda')})")
        diffs = []
        for uid, item, score in spark["pairs"]:
            status, body = http(server.port, "GET", f"/v1/models/spark/users/{uid}/predict?item={item}")
            if status == 200:
                diffs.append(abs(body["score"] - score))
        mean = sum(diffs) / max(1, len(diffs))
        checks.check(len(diffs) == len(spark["pairs"]) and mean < 0.1,
                     f"users fitted under Spark's items score close to Spark's (mean difference {mean:.4f})")
        print(f"spark-import-test: version 2 (users fitted): mean difference from Spark's scores {mean:.4f}")
        server.stop()
        server = None

        # 8. A bad line is refused, named, and nothing is stored.
        bad = os.path.join(work, "bad.json")
        with open(bad, "w") as f:
            f.write('{"id": 1, "features": [0.1, 0.2]}\n{"id": 2, "features": [0.1, "x"]}\n')
        proc = run([binary, "import", "--data-dir", data, "--model", "spark", "--items", bad], "osprey import (bad file)",
                   ok_codes=(64, 1))
        checks.check("line 2" in proc.stderr and "features[1]" in proc.stderr, f"the error names line 2 ({proc.stderr.strip()})")
        models = run([binary, "models", "--data-dir", data], "osprey models").stdout
        checks.check("v3" not in models, "nothing was stored from the bad file")
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    if checks.failed:
        print(f"spark-import-test: {len(checks.failed)} of {checks.passed + len(checks.failed)} checks failed")
        return 1
    print(f"spark-import-test: {checks.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
