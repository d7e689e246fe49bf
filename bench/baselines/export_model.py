#!/usr/bin/env python3
"""Exports an Osprey model from its SQLite store for the baselines of bench/compare.sh.

    export_model.py export DATA_DIR MODEL OUT_DIR
        Reads the serving version (item ids, feature table, offsets, prior) from
        DATA_DIR/catalog.sqlite (osprey.sqlite in a directory no newer server has opened), the
        log's last sequence from DATA_DIR/osprey.sqlite, and every user's weights and A^-1 from
        the latest snapshot in
        DATA_DIR/snapshots.sqlite, and writes them as .npy/.json files into OUT_DIR for
        fastapi_app.py. Does nothing when OUT_DIR already holds this snapshot.

    export_model.py redis OUT_DIR KEYS
        Writes to stdout the Redis protocol that SETs KEYS precomputed predictions
        (key:%012d, the names redis-benchmark's GET asks for) of random (user, item) pairs of the
        exported model, for `redis-cli --pipe`.

Blob formats (Sources/OspreyStorage, Sources/OspreyMath/RidgeState+Serialization.swift):
- version.item_ids: JSON array of strings; version.features: float32 little-endian,
  items x paddedStride(dimension) (dimension includes the bias feature 1; stride rounded up
  to a multiple of 8, zero lanes); version.offsets: float32 per item (mu + b_i);
  version.prior: float32 x dimension (the mean user weights).
- user_ridge.state (user_state before the "user_ridge" migration): magic u32, d u32, updates u64,
  then "RDG3": w (d float32), the upper triangle of A^-1 row by row (d(d+1)/2 float32; A^-1 is
  symmetric), that of A, b (d float64); or "RDG2": w (d float32), A^-1 (d x d float32), the upper
  part of A, b (d float64).
A prediction is offsets[i] + w_u . features[i].
"""
import json
import os
import sqlite3
import sys
import time

import numpy as np

MAGIC = 0x52444732  # "RDG2"
PACKED_MAGIC = 0x52444733  # "RDG3"


def export(data_dir, model, out):
    db = sqlite3.connect(f"file:{data_dir}/osprey.sqlite?mode=ro", uri=True)
    catalog_file = os.path.join(data_dir, "catalog.sqlite")
    catalog = sqlite3.connect(f"file:{catalog_file}?mode=ro", uri=True) if os.path.exists(catalog_file) else db
    snap = sqlite3.connect(f"file:{data_dir}/snapshots.sqlite?mode=ro", uri=True)
    (version,) = catalog.execute("SELECT serving_version FROM model WHERE name = ?", (model,)).fetchone()
    (seq,) = snap.execute("SELECT seq FROM snapshot WHERE model = ? AND version = ?", (model, version)).fetchone()
    (logged,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM observation WHERE model = ?", (model,)).fetchone()
    stamp = {"model": model, "version": version, "snapshot_seq": seq}
    try:
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
            if all(meta.get(k) == v for k, v in stamp.items()):
                print(f"export: {out} already holds {model} v{version} at snapshot seq {seq}")
                return
    except (OSError, ValueError):
        pass
    os.makedirs(out, exist_ok=True)
    started = time.monotonic()
    d, lam, ids, feats, offsets, prior = catalog.execute(
        "SELECT dimension, lambda, item_ids, features, offsets, prior FROM version WHERE model = ? AND number = ?",
        (model, version)).fetchone()
    ids = json.loads(ids)
    stride = (d + 7) // 8 * 8
    table = np.frombuffer(feats, dtype="<f4").reshape(len(ids), stride)[:, :d]
    tables = {name for (name,) in snap.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    table_name = "user_ridge" if "user_ridge" in tables else "user_state"
    (users,) = snap.execute(f"SELECT COUNT(*) FROM {table_name} WHERE model = ? AND version = ?", (model, version)).fetchone()
    upper = np.triu_indices(d)
    weights = np.empty((users, d), dtype=np.float32)
    inverse = np.empty((users, d, d), dtype=np.float32)
    uids = []
    rows = snap.execute(f"SELECT uid, state FROM {table_name} WHERE model = ? AND version = ?", (model, version))
    for n, (uid, state) in enumerate(rows):
        magic, dim = np.frombuffer(state, dtype="<u4", count=2)
        if magic not in (MAGIC, PACKED_MAGIC) or dim != d:
            sys.exit(f"export: user {uid}: not a d={d} ridge state")
        weights[n] = np.frombuffer(state, dtype="<f4", count=d, offset=16)
        if magic == MAGIC:
            inverse[n] = np.frombuffer(state, dtype="<f4", count=d * d, offset=16 + 4 * d).reshape(d, d)
        else:
            tri = np.frombuffer(state, dtype="<f4", count=len(upper[0]), offset=16 + 4 * d)
            inverse[n][upper] = tri
            inverse[n].T[upper] = tri
        uids.append(uid)
    np.save(os.path.join(out, "features.npy"), np.ascontiguousarray(table))
    np.save(os.path.join(out, "offsets.npy"), np.frombuffer(offsets, dtype="<f4"))
    np.save(os.path.join(out, "prior.npy"), np.frombuffer(prior, dtype="<f4"))
    np.save(os.path.join(out, "weights.npy"), weights)
    np.save(os.path.join(out, "inverse.npy"), inverse)
    with open(os.path.join(out, "items.json"), "w") as f:
        json.dump(ids, f)
    with open(os.path.join(out, "uids.json"), "w") as f:
        json.dump(uids, f)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(dict(stamp, dimension=d, **{"lambda": lam}, users=users, items=len(ids)), f)
    behind = f" ({logged - seq} logged observations after it are not in the export)" if logged > seq else ""
    print(f"export: {model} v{version}: {len(ids)} items, {users} users, d={d} (with bias), snapshot seq {seq}{behind} -> {out} "
          f"in {time.monotonic() - started:.1f} s")


def redis_protocol(out, keys):
    feats = np.load(os.path.join(out, "features.npy"))
    offsets = np.load(os.path.join(out, "offsets.npy"))
    weights = np.load(os.path.join(out, "weights.npy"))
    rng = np.random.default_rng(7)
    w = sys.stdout.buffer
    chunk = 100_000
    for start in range(0, keys, chunk):
        n = min(chunk, keys - start)
        u = rng.integers(0, len(weights), n)
        i = rng.integers(0, len(feats), n)
        scores = np.einsum("nd,nd->n", weights[u], feats[i]) + offsets[i]
        parts = []
        for j, s in enumerate(scores):
            key = b"key:%012d" % (start + j)
            val = b"%.4f" % s
            parts.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val))
        w.write(b"".join(parts))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "redis":
        redis_protocol(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
