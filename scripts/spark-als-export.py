#!/usr/bin/env python3
"""Writes a saved Spark ALSModel's factors in the form `osprey import` reads.

Loads the ALSModel directory (what `model.write().save(path)` wrote) and writes its
`itemFactors` to OUT/items and its `userFactors` to OUT/users, each a directory of JSON lines
`{"id": 17, "features": [...]}` (`df.write.json`, one part file). Spark's ALS has no biases:
Osprey predicts `user · item`, as Spark's `transform` does. Then:

    osprey import --model NAME --items OUT/items --users OUT/users \\
        [--ratings RATINGS --lambda REG_PARAM --scale-lambda]

(`--scale-lambda` because Spark penalizes each user by regParam times its number of ratings.)

Runs with PySpark (scripts/install-spark.sh puts it in .venv-spark/):

    .venv-spark/bin/python scripts/spark-als-export.py MODEL_DIR OUT [--master local[2]]
"""

import argparse
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a saved ALSModel directory")
    parser.add_argument("out", help="where to write items/ and users/ (created; must not hold them yet)")
    parser.add_argument("--master", default="local[2]", help="Spark master URL (default local[2])")
    args = parser.parse_args()

    if not os.path.isdir(os.path.join(args.model, "metadata")):
        sys.exit(f"spark-als-export: {args.model} is not a saved Spark model (no metadata/ in it)")
    for side in ("items", "users"):
        if os.path.exists(os.path.join(args.out, side)):
            sys.exit(f"spark-als-export: {os.path.join(args.out, side)} exists; choose an empty OUT")

    from pyspark.sql import SparkSession
    from pyspark.ml.recommendation import ALSModel

    spark = (SparkSession.builder.master(args.master).appName("osprey-als-export")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        model = ALSModel.load(args.model)
        for side, frame in (("items", model.itemFactors), ("users", model.userFactors)):
            path = os.path.join(args.out, side)
            frame.select("id", "features").coalesce(1).write.json(path)
            print(f"wrote {frame.count()} {side[:-1]} vectors of rank {model.rank} to {path}", file=sys.stderr)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
