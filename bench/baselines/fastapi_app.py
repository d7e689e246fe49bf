"""The FastAPI baseline of bench/compare.sh: what a Python team would write to serve the same
personalized linear model as Osprey, with the same three endpoints and JSON shapes.

    OSPREY_EXPORT=DIR OSPREY_OBSERVATIONS=FILE.sqlite \
        uvicorn fastapi_app:app --workers 2 --host 127.0.0.1 --port 18282

DIR holds a model exported by export_model.py. Each uvicorn worker is its own process and loads
its own copy of the weights; an observe updates the copy of the worker that served it, so with
2 workers the two copies diverge (a user's next request may land on the other worker). That is
what such a team would ship first. The observation log is shared: one SQLite file in WAL mode
with synchronous=FULL, each observation committed before the answer (one commit per request:
SQLite serializes the writers of both workers, and a writer that finds the file locked waits in
SQLite's busy handler).
"""
import json
import os
import sqlite3
import threading
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Model:
    """prediction(u, i) = offsets[i] + weights[u] . features[i]; per user A^-1 for online updates."""

    def __init__(self, directory):
        with open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
        self.name = meta["model"]
        self.version = meta["version"]
        self.lam = meta["lambda"]
        self.features = np.load(os.path.join(directory, "features.npy"))  # items x d
        self.offsets = np.load(os.path.join(directory, "offsets.npy"))  # items
        self.prior = np.load(os.path.join(directory, "prior.npy"))  # d
        self.weights = np.load(os.path.join(directory, "weights.npy"))  # users x d
        self.inverse = np.load(os.path.join(directory, "inverse.npy"))  # users x d x d
        with open(os.path.join(directory, "items.json")) as f:
            self.item_ids = json.load(f)
        with open(os.path.join(directory, "uids.json")) as f:
            self.user_row = {uid: n for n, uid in enumerate(json.load(f))}
        self.item_row = {item: n for n, item in enumerate(self.item_ids)}
        self.new_users = {}  # uid -> (w, A^-1) of users not in the export, bootstrapped from the prior

    def user(self, uid, create=False):
        """The user's (w, A^-1) as views that can be updated in place."""
        n = self.user_row.get(uid)
        if n is not None:
            return self.weights[n], self.inverse[n]
        state = self.new_users.get(uid)
        if state is None:
            state = (self.prior.copy(), np.eye(len(self.prior), dtype=np.float32) / self.lam)
            if create:
                self.new_users[uid] = state
        return state

    def learn(self, uid, row, label):
        """Sherman-Morrison (Velox eq. 2): u = A^-1 f, s = 1 + f.u,
        A^-1 -= u u^T / s, w += u (t - w.f) / s. O(d^2)."""
        w, inv = self.user(uid, create=True)
        f = self.features[row]
        t = label - self.offsets[row]
        u = inv @ f
        s = 1.0 + f @ u
        error = t - w @ f
        inv -= np.outer(u, u / s)
        w += u * (error / s)


model: Model
local = threading.local()
learning = threading.Lock()


@asynccontextmanager
async def lifespan(app):
    global model
    model = Model(os.environ["OSPREY_EXPORT"])
    db = sqlite3.connect(os.environ["OSPREY_OBSERVATIONS"], timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("""CREATE TABLE IF NOT EXISTS observation (
        seq INTEGER PRIMARY KEY, model TEXT NOT NULL, uid TEXT NOT NULL, item TEXT NOT NULL,
        label REAL NOT NULL, time REAL NOT NULL)""")
    db.commit()
    db.close()
    yield


app = FastAPI(lifespan=lifespan)


def error(status, code, message):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def unknown_model(name):
    return error(404, "unknown_model", f"no model named {name}")


class TopKRequest(BaseModel):
    k: int = 10


class ObserveRequest(BaseModel):
    item: str
    label: float


@app.get("/v1/models/{name}/users/{uid}/predict")
async def predict(name: str, uid: str, item: str):
    if name != model.name:
        return unknown_model(name)
    row = model.item_row.get(item)
    if row is None:
        return error(404, "unknown_item", f"model {name} has no item {item}")
    w, _ = model.user(uid)
    score = float(model.offsets[row] + w @ model.features[row])
    return {"uid": uid, "item": item, "score": score, "version": model.version}


@app.post("/v1/models/{name}/users/{uid}/topk")
async def topk(name: str, uid: str, body: TopKRequest):
    if name != model.name:
        return unknown_model(name)
    if not 1 <= body.k <= 10000:
        return error(400, "invalid_argument", "k must be in 1...10000")
    w, _ = model.user(uid)
    scores = model.features @ w + model.offsets  # whole catalogue: items x d matvec
    k = min(body.k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best])]
    items = [{"item": model.item_ids[i], "score": float(scores[i])} for i in best]
    return {"uid": uid, "version": model.version, "items": items}


def observation_log():
    """This thread's connection to the observation log (sqlite3 connections are per thread)."""
    db = getattr(local, "db", None)
    if db is None:
        db = sqlite3.connect(os.environ["OSPREY_OBSERVATIONS"], timeout=10)
        db.execute("PRAGMA synchronous=FULL")
        local.db = db
    return db


# A plain `def`: FastAPI runs it in its thread pool, so the blocking SQLite commit does not stall
# the event loop (FastAPI's advice for blocking I/O; 2-3x the throughput of an `async def` here).
@app.post("/v1/models/{name}/users/{uid}/observe")
def observe(name: str, uid: str, body: ObserveRequest):
    if name != model.name:
        return unknown_model(name)
    if not np.isfinite(body.label):
        return error(400, "invalid_argument", "label must be a finite number")
    db = observation_log()
    db.execute("INSERT INTO observation (model, uid, item, label, time) VALUES (?, ?, ?, ?, ?)",
               (name, uid, body.item, body.label, time.time()))
    db.commit()  # durable (synchronous=FULL) before the answer
    row = model.item_row.get(body.item)
    if row is not None:  # an unknown item is logged but cannot move the weights
        with learning:  # pool threads update one user's state one at a time
            model.learn(uid, row, np.float32(body.label))
    return {"uid": uid, "item": body.item, "version": model.version, "accepted": True}


@app.get("/healthz")
async def healthz():
    return {"status": "ok", "pid": os.getpid()}
