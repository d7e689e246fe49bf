#!/usr/bin/env python3
"""Measures `osprey serve` on a store built by `osprey-bench --tiers-build`: the time from spawn to
a healthy /healthz, the resident memory at rest, then after warming N distinct users with observe
requests (bulk, 1000 per request), and the tier metrics. Talks only to 127.0.0.1; stops only the
server it started (SIGTERM by PID, SIGKILL after a timeout).

Usage: tiers_serve.py BINARY DATA_DIR PORT HOT_USERS WARM_USERS TOTAL_USERS LABEL
Prints one markdown table row.
"""
import json, os, random, signal, subprocess, sys, time, urllib.request

binary, data, port, hot, warm, total, label = sys.argv[1:8]
port, warm, total = int(port), int(warm), int(total)
base = f"http://127.0.0.1:{port}"

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

def get(path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return r.read().decode()

log = open(os.path.join(data, f"serve-{label}.log"), "w")
start = time.monotonic()
args = [binary, "serve", "--data-dir", data, "--port", str(port), "--snapshot-observations", "100000000",
        "--prediction-cache", "0"]
if hot != "-":  # "-": a release from before tiering, which has no --hot-users
    args += ["--hot-users", hot]
proc = subprocess.Popen(args, stdout=log, stderr=log)
try:
    while True:
        try:
            get("/healthz")
            break
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"server exited with {proc.returncode}; see {log.name}")
            if time.monotonic() - start > 600:
                sys.exit("server did not start in 600 s")
            time.sleep(0.05)
    startup = time.monotonic() - start
    rss_idle = rss_mb(proc.pid)
    rng = random.Random(1)
    users = rng.sample(range(total), warm)
    t0 = time.monotonic()
    for i in range(0, warm, 1000):
        body = {"observations": [{"uid": f"u{u}", "item": f"i{rng.randrange(10000)}", "label": rng.uniform(1, 5)}
                                 for u in users[i:i + 1000]]}
        req = urllib.request.Request(base + "/v1/models/bench/observations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=300) as r:
            assert json.loads(r.read())["accepted"] == len(body["observations"])
    warm_s = time.monotonic() - t0
    rss_warm = rss_mb(proc.pid)
    # A predict of cold users (reads only the cold tier).
    t1 = time.monotonic()
    for _ in range(2000):
        get(f"/v1/models/bench/users/u{rng.randrange(total)}/predict?item=i{rng.randrange(10000)}")
    predict_ms = (time.monotonic() - t1) / 2000 * 1000
    metrics = {}
    for line in get("/metrics").splitlines():
        for name in ("osprey_users_hot", "osprey_users_cold", "osprey_user_rebuilds_total", "osprey_user_evictions_total",
                     "osprey_user_rebuild_seconds_total"):
            if line.startswith(name + "{"):
                metrics[name] = float(line.split()[-1])
    if "osprey_users_hot" in metrics:
        rebuilds = metrics["osprey_user_rebuilds_total"]
        hot_now = f"{int(metrics['osprey_users_hot']):,}"
        per_rebuild = (f"{metrics['osprey_user_rebuild_seconds_total'] / rebuilds * 1e6:.0f} µs" if rebuilds else "—")
        rebuilds = f"{int(rebuilds):,}"
    else:
        hot_now, rebuilds, per_rebuild = "all", "—", "—"
    print(f"| {label} | {total:,} | {hot} | {startup:.1f} s | {rss_idle:,.0f} MB | {warm:,} in {warm_s:.1f} s | "
          f"{rss_warm:,.0f} MB | {hot_now} | {rebuilds} | {per_rebuild} | {predict_ms:.2f} ms |", flush=True)
finally:
    proc.send_signal(signal.SIGKILL)  # the store is thrown away; no need for a graceful snapshot
    proc.wait()
