#!/usr/bin/env python3
"""The client side of bench/soak.sh (Python 3 standard library only). Subcommands:

  load    back-to-back wrk segments of the request mix; after each, a sample (server RSS from
          /proc/PID/status, the segment's requests/s, p50/p99/max and errors, a few /metrics
          counters) appended to SAMPLES.csv; meanwhile a control thread that retrains every
          60–120 s (polling the job), after every second retrain rolls back to the version before
          and then forward again, and logs each action with its time to ACTIONS.csv.
  burst   concurrent durable observes, each with a unique observation_id, until the server goes
          away (bench/soak.sh SIGKILLs it); writes every acknowledged observation to a JSON file.
  verify  after the restart, sends every acknowledged observation again: each must be answered
          `duplicate: true` (it was durable); compares the model's observation counts too.
  report  the Markdown summary with PASS/FAIL and the SVG plot (RSS, p99, requests/s over time,
          retrains, rollbacks and snapshots marked) from the files the other steps wrote.

Talks only to 127.0.0.1.
"""
import argparse
import csv
import http.client
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

MODEL = "bench"
SAMPLE_FIELDS = ["t_s", "segment", "rss_kib", "rss_anon_kib", "requests_per_s", "requests", "p50_ms", "p99_ms",
                 "max_ms", "non2xx", "socket_errors", "error_codes", "version", "snapshots_total",
                 "snapshot_in_progress", "observations_total", "users_hot", "cache_entries"]
ACTION_FIELDS = ["t_s", "action", "detail", "seconds", "ok"]


# HTTP ----------------------------------------------------------------------------------------

def request(port, method, path, body=None, timeout=30.0, conn=None):
    """(status, parsed JSON or text) of one request; `conn` is reused when given."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        raw = r.read()
        try:
            payload = json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode(errors="replace")
        except ValueError:
            payload = raw.decode(errors="replace")
        return r.status, payload
    finally:
        if own:
            c.close()


def model_info(port):
    status, info = request(port, "GET", f"/v1/models/{MODEL}")
    if status != 200:
        raise RuntimeError(f"GET /v1/models/{MODEL}: {status} {info}")
    return info


def metrics(port):
    """The few /metrics series the samples record."""
    try:
        status, text = request(port, "GET", "/metrics", timeout=10.0)
    except (OSError, http.client.HTTPException) as e:
        print(f"/metrics: {e!r}", file=sys.stderr)
        status, text = 0, ""
    wanted = {"osprey_snapshots_total": None, "osprey_snapshot_in_progress": None,
              f'osprey_observations_total{{model="{MODEL}"}}': None,
              f'osprey_model_version{{model="{MODEL}"}}': None, f'osprey_users_hot{{model="{MODEL}"}}': None,
              f'osprey_prediction_cache_entries{{model="{MODEL}"}}': None}
    if status == 200:
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name in wanted:
                wanted[name] = float(value)
    return wanted


# wrk -----------------------------------------------------------------------------------------

def to_ms(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)?", v)
    if not m:
        return math.nan
    x, unit = float(m.group(1)), m.group(2) or "ms"
    return round(x * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}[unit], 3)


def parse_wrk(out):
    """requests, requests/s, p50, p99, max (ms), non-2xx, socket errors, error codes of `wrk --latency`."""
    r = {"requests": 0, "requests_per_s": math.nan, "p50_ms": math.nan, "p99_ms": math.nan,
         "max_ms": math.nan, "non2xx": 0, "socket_errors": 0, "error_codes": ""}
    codes = []
    for line in out.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "Latency" and len(f) >= 4:
            r["max_ms"] = to_ms(f[3])
        elif f[0] == "50%":
            r["p50_ms"] = to_ms(f[1])
        elif f[0] == "99%":
            r["p99_ms"] = to_ms(f[1])
        elif len(f) >= 3 and f[1] == "requests" and f[2] == "in":
            r["requests"] = int(f[0])
        elif f[0] == "Requests/sec:":
            r["requests_per_s"] = float(f[1])
        elif line.strip().startswith("Non-2xx"):
            r["non2xx"] = int(f[-1])
        elif f[0] == "Socket" and f[1] == "errors:":
            r["socket_errors"] = sum(int(x.strip(",")) for x in f[3::2])
        elif f[0] == "ERRORS":       # from the Lua done() hook: "ERRORS status:code count"
            codes.append(f"{f[1]}={f[2]}")
    r["error_codes"] = " ".join(codes)
    return r


# load ----------------------------------------------------------------------------------------

class Recorder:
    """Appends rows to a CSV file, flushed at once, from any thread."""

    def __init__(self, path, fields):
        self.lock = threading.Lock()
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields)
        self.writer.writeheader()
        self.file.flush()

    def add(self, row):
        with self.lock:
            self.writer.writerow(row)
            self.file.flush()


def control_loop(args, t0, stop, actions):
    """Retrain every CONTROL_MIN–CONTROL_MAX s; after every second retrain, roll back to the
    version before and then forward to the new one again. Finishes the action under way when
    `stop` is set."""
    rnd = random.Random(args.seed)
    port = args.port

    def log(action, detail, seconds, ok):
        actions.add({"t_s": f"{time.monotonic() - t0:.1f}", "action": action, "detail": detail,
                     "seconds": f"{seconds:.1f}", "ok": int(ok)})
        print(f"[{time.monotonic() - t0:7.1f} s] {action}: {detail} ({seconds:.1f} s){'' if ok else ' FAILED'}",
              flush=True)

    def pause(seconds):
        return stop.wait(seconds)   # True when the load has ended

    cycle = 0
    while not pause(rnd.uniform(args.control_min, args.control_max)):
        cycle += 1
        try:
            before = model_info(port)["version"]
            start = time.monotonic()
            actions.add({"t_s": f"{start - t0:.1f}", "action": "retrain-start",
                         "detail": f"from v{before}", "seconds": "0.0", "ok": 1})
            status, job = request(port, "POST", f"/v1/models/{MODEL}/retrain", {})
            if status not in (200, 202):
                log("retrain", f"refused: {status} {job}", time.monotonic() - start, False)
                continue
            while job.get("phase") not in ("done", "failed", "cancelled"):
                time.sleep(1.0)
                status, job = request(port, "GET", f"/v1/models/{MODEL}/jobs/{job['id']}")
                if status != 200:
                    raise RuntimeError(f"job poll: {status} {job}")
            ok = job["phase"] == "done"
            new = job.get("version")
            log("retrain", f"job {job['id']} {job['phase']}: v{before} -> v{new}"
                + ("" if ok else f" ({job.get('error')})"), time.monotonic() - start, ok)
            if not ok or cycle % 2 == 1:
                continue
            for target in (before, new):
                if pause(rnd.uniform(10, 20)) and target == before:
                    break   # the load ended: leave the retrained version serving
                start = time.monotonic()
                status, answer = request(port, "POST", f"/v1/models/{MODEL}/rollback", {"version": target}, timeout=300)
                log("rollback", f"to v{target}" + ("" if status == 200 else f": {status} {answer}"),
                    time.monotonic() - start, status == 200)
        except Exception as e:  # an action that could not be made is a failed action, not a crash
            log("control-error", repr(e), 0.0, False)


def cmd_load(args):
    samples = Recorder(args.samples, SAMPLE_FIELDS)
    actions = Recorder(args.actions, ACTION_FIELDS)
    stop = threading.Event()
    t0 = time.monotonic()
    control = threading.Thread(target=control_loop, args=(args, t0, stop, actions), daemon=True)
    control.start()
    segment = 0
    url = f"http://127.0.0.1:{args.port}"
    while time.monotonic() - t0 < args.duration - 1:
        segment += 1
        seconds = max(1, min(args.segment, round(args.duration - (time.monotonic() - t0))))
        cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
               "-s", args.lua, url, "--", str(args.seed * 100000 + segment), str(args.users),
               str(args.items), str(args.delay_ms)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        r = parse_wrk(out.stdout)
        if out.returncode != 0:
            print(f"wrk exited {out.returncode}: {out.stderr.strip()}", file=sys.stderr)
        rss, anon = rss_kib(args.pid), rss_kib(args.pid, "RssAnon:")
        m = metrics(args.port)
        row = {"t_s": f"{time.monotonic() - t0:.1f}", "segment": segment, "rss_kib": rss, "rss_anon_kib": anon, **r,
               "version": fmt(m[f'osprey_model_version{{model="{MODEL}"}}']),
               "snapshots_total": fmt(m["osprey_snapshots_total"]),
               "snapshot_in_progress": fmt(m["osprey_snapshot_in_progress"]),
               "observations_total": fmt(m[f'osprey_observations_total{{model="{MODEL}"}}']),
               "users_hot": fmt(m[f'osprey_users_hot{{model="{MODEL}"}}']),
               "cache_entries": fmt(m[f'osprey_prediction_cache_entries{{model="{MODEL}"}}'])}
        samples.add(row)
        if segment % 6 == 1:
            print(f"[{row['t_s']:>7} s] segment {segment}: {r['requests_per_s']:.0f} req/s, p99 {r['p99_ms']:.2f} ms, "
                  f"RSS {rss / 1024:.0f} MiB, errors {r['non2xx'] + r['socket_errors']} {r['error_codes']}", flush=True)
    stop.set()
    print("load done; waiting for the control action under way", flush=True)
    control.join()


def fmt(v):
    return "" if v is None else f"{v:g}"


def rss_kib(pid, field="VmRSS:"):
    """A resident size of `pid` in KiB from /proc/PID/status (VmRSS, or RssAnon: its heap and
    other private memory, without the mapped binary and libraries)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# loss check ----------------------------------------------------------------------------------

def cmd_burst(args):
    """Observes with unique ids from `threads` connections until the server is gone."""
    before = model_info(args.port)["observations"]
    acked, lock = [], threading.Lock()
    sent = [0]
    deadline = time.monotonic() + args.max_seconds
    rnd = random.Random(args.seed)
    tag = f"loss-{int(time.time())}"

    def worker(w):
        conn, failing_since, n = None, None, 0
        while time.monotonic() < deadline:
            n += 1
            obs = {"uid": f"u{rnd.randrange(args.users)}", "item": f"i{rnd.randrange(args.items)}",
                   "label": rnd.randint(1, 5), "observation_id": f"{tag}-{w}-{n}"}
            body = {"item": obs["item"], "label": obs["label"], "observation_id": obs["observation_id"]}
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
                with lock:
                    sent[0] += 1
                status, answer = request(args.port, "POST", f"/v1/models/{MODEL}/users/{obs['uid']}/observe",
                                         body, conn=conn)
                failing_since = None
                if 200 <= status < 300 and isinstance(answer, dict) and answer.get("accepted"):
                    with lock:
                        acked.append(obs)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > 2.0:
                    return      # the server is gone
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(args.out, "w") as f:
        json.dump({"observations_before": before, "sent": sent[0], "acked": acked}, f)
    print(f"burst: {sent[0]} observes sent, {len(acked)} acknowledged", flush=True)


def cmd_verify(args):
    with open(args.burst) as f:
        burst = json.load(f)
    after = model_info(args.port)["observations"]
    acked = burst["acked"]
    results, lock = {"duplicate": 0, "lost": []}, threading.Lock()

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
        for obs in chunk:
            body = {"item": obs["item"], "label": obs["label"], "observation_id": obs["observation_id"]}
            status, answer = request(args.port, "POST", f"/v1/models/{MODEL}/users/{obs['uid']}/observe", body, conn=conn)
            with lock:
                if status == 200 and isinstance(answer, dict) and answer.get("duplicate") is True:
                    results["duplicate"] += 1
                else:
                    results["lost"].append({"observation_id": obs["observation_id"], "status": status, "answer": answer})
        conn.close()

    chunks = [acked[i::8] for i in range(8)]
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {"sent": burst["sent"], "acked": len(acked), "checked": len(acked),
              "duplicate": results["duplicate"], "lost": len(results["lost"]),
              "lost_examples": results["lost"][:10],
              "observations_before": burst["observations_before"], "observations_after_restart": after,
              "restart_seconds": args.restart_seconds}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"loss check: {len(acked)} acknowledged, {len(acked)} resent, {results['duplicate']} answered duplicate, "
          f"{len(results['lost'])} lost; log count {burst['observations_before']} -> {after} "
          f"(+{after - burst['observations_before']}, {burst['sent']} sent)", flush=True)


# report --------------------------------------------------------------------------------------

def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def slope(xs, ys):
    """Least-squares slope of ys over xs."""
    n = len(xs)
    if n < 2:
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else math.nan


def thirds(values):
    k = len(values) // 3
    if k == 0:
        return math.nan, math.nan
    return statistics.median(values[:k]), statistics.median(values[-k:])


def hot_tier_filled(samples, fraction=0.95):
    """When the hot tier first held `fraction` of its steady size (the median of `users_hot` over
    the run's second half), with that size; nan when it was not sampled."""
    hot = [(num(s["t_s"]), num(s["users_hot"])) for s in samples if s.get("users_hot")]
    hot = [(t, h) for t, h in hot if not math.isnan(h)]
    if not hot:
        return math.nan, math.nan
    steady = statistics.median(h for t, h in hot if t > hot[-1][0] / 2)
    return next((t for t, h in hot if h >= fraction * steady), math.nan), steady


def rss_range(samples, after_s):
    """The RSS samples after `after_s` as (median MiB, lowest %, highest % of it)."""
    rss = [num(s["rss_kib"]) / 1024 for s in samples if num(s["t_s"]) > after_s and not math.isnan(num(s["p99_ms"]))]
    if not rss:
        return math.nan, math.nan, math.nan
    med = statistics.median(rss)
    return med, (min(rss) - med) / med * 100, (max(rss) - med) / med * 100


def cmd_report(args):
    samples = read_csv(args.samples)
    actions = read_csv(args.actions)
    with open(args.loss) as f:
        loss = json.load(f)
    with open(args.meta) as f:
        meta = json.load(f)
    # The warm-up lasts at least the given time, and, unless WARMUP was given, until the hot tier
    # has filled: resident memory follows it, and at the soak's rate of observations it fills in
    # about five minutes (each user's first observation makes it hot).
    filled, steady_hot = hot_tier_filled(samples)
    given = meta["warmup_rule"] == "given as WARMUP"
    warmup = args.warmup if given or math.isnan(filled) else max(args.warmup, filled)
    t = [num(s["t_s"]) for s in samples]
    after = [s for s in samples if num(s["t_s"]) > warmup and not math.isnan(num(s["p99_ms"]))]
    requests = sum(int(s["requests"] or 0) for s in samples)
    non2xx = sum(int(s["non2xx"] or 0) for s in samples)
    sock = sum(int(s["socket_errors"] or 0) for s in samples)
    codes = {}
    for s in samples:
        for c in (s["error_codes"] or "").split():
            k, _, v = c.partition("=")
            codes[k] = codes.get(k, 0) + int(v)
    failed_actions = [a for a in actions if a["ok"] == "0"]
    retrains = [a for a in actions if a["action"] == "retrain"]
    rollbacks = [a for a in actions if a["action"] == "rollback"]

    verdicts = []
    lines = []
    if len(after) >= 3:
        rss = [num(s["rss_kib"]) / 1024 for s in after]
        med, lo, hi = rss_range(samples, warmup)
        rss_ok = max(abs(lo), abs(hi)) <= 10
        xs = [num(s["t_s"]) / 3600 for s in after]
        p99 = [num(s["p99_ms"]) for s in after]
        p99_slope = slope(xs, p99)
        first, last = thirds(p99)
        p99_ok = last <= 1.25 * first
        rss_slope = slope(xs, rss)
        rss_first, rss_last = thirds(rss)
    else:
        rss = p99 = []
        med = lo = hi = p99_slope = first = last = rss_slope = rss_first = rss_last = math.nan
        rss_ok = p99_ok = False
    m10, lo10, hi10 = rss_range(samples, args.warmup)
    err_ok = non2xx + sock == 0 and not failed_actions
    loss_ok = loss["lost"] == 0 and loss["acked"] > 0 and \
        loss["observations_after_restart"] - loss["observations_before"] >= loss["acked"]
    verdicts = [("RSS after warm-up within ±10 % of its median", rss_ok,
                 f"{lo:+.1f} % … {hi:+.1f} % (median {med:.0f} MiB)"),
                ("p99 does not trend: last-third median ≤ 1.25 × first-third median", p99_ok,
                 f"{first:.2f} ms → {last:.2f} ms ({last / first if first else math.nan:.2f}×)"),
                ("0 errors (non-2xx, socket errors, failed control actions)", err_ok,
                 f"{non2xx} non-2xx, {sock} socket errors, {len(failed_actions)} failed actions"),
                ("nothing acknowledged lost across SIGKILL", loss_ok,
                 f"{loss['acked']} acknowledged, {loss['checked']} checked, {loss['lost']} lost")]
    overall = all(v[1] for v in verdicts)

    dur = t[-1] if t else 0
    w = lines.append
    w(f"# Soak: {dur / 60:.1f} minutes of mixed load ({meta['date']})")
    w("")
    w(f"**{'PASS' if overall else 'FAIL'}**. `{meta['command']}` at commit {meta['commit']} "
      f"(binary `{meta['binary']}`), {meta['machine']}.")
    w("")
    w(f"**Load.** wrk -t1 -c{meta['connections']}, each connection pausing {meta['delay_ms']} ms after each answer "
      f"(0: unpaced), in back-to-back {meta['segment']}-second segments, each segment a new set of 20,000 "
      "prebuilt requests (cycled): 45 % predict, 20 % greedy whole-catalogue topk (`\"explore\": false`), "
      f"10 % exploring topk (the model's policy, `{meta['policy']}`), 20 % durable observe (half with an "
      "`observation_id`, repeats answered as duplicates) and 5 % bulk observations (5 a request). "
      f"Model: 100,000 users, 10,000 items, d = 50 (bench/http.sh's). Server options: `{meta['serve']}`.")
    w("")
    w(f"**Control.** A retrain after a pause of {meta['control']} s (drawn uniformly) from the end of the last "
      "action, polled until done; after every second retrain a "
      "rollback to the version before, then 10–20 s later to the new one. Snapshots come from "
      f"`--snapshot-observations`. Warm-up: the first {warmup:.0f} s, excluded from the RSS and p99 figures: "
      + (f"{meta['warmup_rule']}." if given or math.isnan(filled) else
         f"{meta['warmup_rule']} ({args.warmup:.0f} s), and until the hot tier first held 95 % of its steady size "
         f"(the median of `users_hot` over the run's second half, {steady_hot:,.0f} users), at {filled:.0f} s."))
    w("")
    w("| check | result | figures |")
    w("|---|---|---|")
    for name, ok, fig in verdicts:
        w(f"| {name} | {'PASS' if ok else 'FAIL'} | {fig} |")
    w("")
    w("## Figures")
    w("")
    snaps = [num(s["snapshots_total"]) for s in samples if s["snapshots_total"]]
    obs = [num(s["observations_total"]) for s in samples if s["observations_total"]]
    w(f"- Requests: {requests:,} in {len(samples)} segments ({requests / dur if dur else 0:,.0f}/s overall); "
      f"errors: {non2xx} non-2xx, {sock} socket errors" + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(codes.items()))})" if codes else "") + ".")
    w(f"- Observations learned (server counter): {obs[-1]:,.0f}; snapshots: {snaps[-1]:.0f}." if obs and snaps else
      "- Observations and snapshots: not recorded.")
    w(f"- Control actions: {len(retrains)} retrains, {len(rollbacks)} rollbacks, {len(failed_actions)} failed; "
      f"retrain time {min(num(a['seconds']) for a in retrains):.0f}–{max(num(a['seconds']) for a in retrains):.0f} s."
      if retrains else f"- Control actions: none completed ({len(failed_actions)} failed).")
    if rss:
        w(f"- RSS after warm-up: min {min(rss):.0f} MiB, median {med:.0f} MiB, max {max(rss):.0f} MiB "
          f"({lo:+.1f} % / {hi:+.1f} % of the median); least-squares slope {rss_slope:+.1f} MiB per hour; "
          f"median of the first third {rss_first:.0f} MiB, of the last third {rss_last:.0f} MiB. "
          + (f"With only the first {args.warmup:.0f} s left out: median {m10:.0f} MiB, {lo10:+.1f} % … {hi10:+.1f} %. "
             if warmup != args.warmup else "") +
          f"RSS at the first sample: {num(samples[0]['rss_kib']) / 1024:.0f} MiB. The CSV's `users_hot` is the hot "
          "tier (users with their full ridge state in memory, about 10.6 KB each at d = 50): it fills as users "
          "learn, and a retrain or a rollback carries it over to the new version (docs/operations.md, tiered user state).")
        anon = [num(s.get("rss_anon_kib") or "nan") / 1024 for s in after]
        entries = [num(s.get("cache_entries") or "nan") for s in after]
        if not any(math.isnan(v) for v in anon + entries):
            (anon_first, anon_last), (entries_first, entries_last) = thirds(anon), thirds(entries)
            w(f"- Of that RSS, the process's private memory (`RssAnon`: heap, stacks; the rest is the mapped binary "
              f"and libraries): median of the first third {anon_first:.0f} MiB, of the last third {anon_last:.0f} MiB. "
              f"Answers in the prediction cache (`osprey_prediction_cache_entries`, a new version's cache starts "
              f"with the hottest answers recomputed and refills): first third {entries_first:,.0f}, last third "
              f"{entries_last:,.0f}.")
        w(f"- p99 after warm-up: median of the first third {first:.2f} ms, of the last third {last:.2f} ms; "
          f"least-squares slope {p99_slope:+.2f} ms per hour; range {min(p99):.2f}–{max(p99):.2f} ms over "
          f"{len(p99)} segments. Requests/s after warm-up: median "
          f"{statistics.median(num(s['requests_per_s']) for s in after):,.0f}.")
    w(f"- Loss check: a burst of concurrent observes with unique `observation_id`s, the server SIGKILLed "
      f"{meta['kill_after']} s into it and restarted on the same data directory "
      f"({loss['restart_seconds']:.1f} s to answer /healthz): {loss['sent']:,} sent, {loss['acked']:,} acknowledged, "
      f"{loss['checked']:,} resent, {loss['duplicate']:,} answered `duplicate: true`, {loss['lost']} lost. "
      f"The model's observation count went from {loss['observations_before']:,} to "
      f"{loss['observations_after_restart']:,} (+{loss['observations_after_restart'] - loss['observations_before']:,}; "
      "at least the acknowledged, at most the sent).")
    w("")
    w(f"Plot: [{os.path.basename(args.svg)}]({os.path.basename(args.svg)}); every sample: "
      f"[{os.path.basename(args.samples)}]({os.path.basename(args.samples)}); every action: "
      f"[{os.path.basename(args.actions)}]({os.path.basename(args.actions)}).")
    w("")
    w("## Control actions")
    w("")
    w("| time (s) | action | detail | took (s) | ok |")
    w("|---:|---|---|---:|---|")
    for a in actions:
        w(f"| {a['t_s']} | {a['action']} | {a['detail']} | {a['seconds']} | {'yes' if a['ok'] == '1' else 'no'} |")
    with open(args.md, "w") as f:
        f.write("\n".join(lines) + "\n")
    write_svg(args.svg, samples, actions, warmup, meta)
    print("\n".join(lines[:12]))
    print(f"wrote {args.md}, {args.svg}")


def write_svg(path, samples, actions, warmup, meta):
    W, left, right, top = 1000, 70, 20, 40
    panels = [("RSS (MiB)", [num(s["rss_kib"]) / 1024 for s in samples], "#1f77b4"),
              ("p99 (ms, log scale)", [num(s["p99_ms"]) for s in samples], "#d62728"),
              ("requests/s", [num(s["requests_per_s"]) for s in samples], "#2ca02c")]
    ph, gap = 170, 30
    H = top + len(panels) * (ph + gap) + 50
    ts = [num(s["t_s"]) for s in samples]
    tmax = max(ts + [num(a["t_s"]) for a in actions] + [1.0])
    X = lambda t: left + (W - left - right) * t / tmax
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{left}" y="22" font-size="15">{esc("Osprey soak " + meta["date"] + ", commit " + meta["commit"])}: '
         'RSS, p99 and requests/s per 10-s segment</text>']
    # retrain spans: retrain-start to its retrain end
    spans, start = [], None
    for a in actions:
        if a["action"] == "retrain-start":
            start = num(a["t_s"])
        elif a["action"] == "retrain" and start is not None:
            spans.append((start, num(a["t_s"]), a["ok"] == "1"))
            start = None
    rollbacks = [num(a["t_s"]) for a in actions if a["action"] == "rollback"]
    snaps, prev = [], None
    for s in samples:
        v = num(s["snapshots_total"])
        if prev is not None and not math.isnan(v) and v > prev:
            snaps.append(num(s["t_s"]))
        prev = v if not math.isnan(v) else prev
    for i, (label, ys, color) in enumerate(panels):
        y0 = top + i * (ph + gap)
        good = [y for y in ys if not math.isnan(y)]
        if i == 1 and good and min(good) > 0:   # p99 on a log scale: spikes stay readable beside the rest
            lo = 10 ** math.floor(math.log10(min(good)))
            hi = max(10 * lo, 10 ** math.ceil(math.log10(max(good))))
            Y = lambda v: y0 + ph - ph * math.log10(max(v, lo) / lo) / math.log10(hi / lo)
            ticks = [m * 10 ** e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)
                     for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]
        else:
            lo = 0.0
            hi = nice_max(max(good) * 1.1) if good and max(good) > 0 else 1.0
            Y = lambda v: y0 + ph - ph * (v - lo) / (hi - lo)
            ticks = [lo + (hi - lo) * k / 4 for k in range(5)]
        o.append(f'<rect x="{left}" y="{y0}" width="{W - left - right}" height="{ph}" fill="none" stroke="#999"/>')
        o.append(f'<rect x="{left}" y="{y0}" width="{X(min(warmup, tmax)) - left:.1f}" height="{ph}" fill="#eee"/>')
        for a, b, ok in spans:
            o.append(f'<rect x="{X(a):.1f}" y="{y0}" width="{max(1.0, X(b) - X(a)):.1f}" height="{ph}" '
                     f'fill="{"#ffbb78" if ok else "#ff9896"}" fill-opacity="0.45"/>')
        for t in rollbacks:
            o.append(f'<line x1="{X(t):.1f}" y1="{y0}" x2="{X(t):.1f}" y2="{y0 + ph}" stroke="#9467bd" '
                     'stroke-width="1.5" stroke-dasharray="4,3"/>')
        for t in snaps:
            o.append(f'<path d="M{X(t):.1f},{y0 + ph} l-4,7 h8 z" fill="#7f7f7f"/>')
        for v in ticks:
            o.append(f'<line x1="{left - 4}" y1="{Y(v):.1f}" x2="{W - right}" y2="{Y(v):.1f}" stroke="#ddd"/>')
            o.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:,.{0 if hi > 20 else 2}f}</text>')
        if ts and tmax > ts[-1] + 1:   # actions the control loop finished after the load
            o.append(f'<line x1="{X(ts[-1]):.1f}" y1="{y0}" x2="{X(ts[-1]):.1f}" y2="{y0 + ph}" stroke="#333" stroke-width="1.5"/>')
            o.append(f'<text x="{X(ts[-1]) + 4:.1f}" y="{y0 + ph - 6}">load ended</text>')
        late = [(t, y) for t, y in zip(ts, ys) if t > warmup and not math.isnan(y)]
        if i == 0 and len(late) >= 3:   # the ±10 % band around the median after the warm-up
            med = statistics.median(y for _, y in late)
            for v in (0.9 * med, 1.1 * med):
                o.append(f'<line x1="{X(warmup):.1f}" y1="{Y(v):.1f}" x2="{W - right}" y2="{Y(v):.1f}" '
                         'stroke="#1f77b4" stroke-dasharray="6,4" stroke-opacity="0.6"/>')
            o.append(f'<text x="{W - right - 4}" y="{Y(1.1 * med) - 4:.1f}" text-anchor="end" fill="#1f77b4">'
                     'median after warm-up ±10 %</text>')
        if i == 1 and len(late) >= 3:   # the medians of the first and last thirds after the warm-up
            k = len(late) // 3
            for part in (late[:k], late[-k:]):
                v = statistics.median(y for _, y in part)
                o.append(f'<line x1="{X(part[0][0]):.1f}" y1="{Y(v):.1f}" x2="{X(part[-1][0]):.1f}" y2="{Y(v):.1f}" '
                         'stroke="#000" stroke-width="2" stroke-dasharray="6,4"/>')
            o.append(f'<text x="{W - right - 4}" y="{y0 + 15}" text-anchor="end">dashed: median p99 of the first '
                     'and the last third after warm-up</text>')
        pts = " ".join(f"{X(t):.1f},{Y(y):.1f}" for t, y in zip(ts, ys) if not math.isnan(y))
        o.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        o.append(f'<text x="{left + 6}" y="{y0 + 15}" fill="{color}" font-weight="bold">{esc(label)}</text>')
    yb = top + len(panels) * (ph + gap) - gap
    step = nice_step(tmax / 60 / 8)
    m = 0.0
    while m * 60 <= tmax + 1e-9:
        o.append(f'<line x1="{X(m * 60):.1f}" y1="{yb}" x2="{X(m * 60):.1f}" y2="{yb + 5}" stroke="#333"/>')
        o.append(f'<text x="{X(m * 60):.1f}" y="{yb + 18}" text-anchor="middle">{m:g}</text>')
        m += step
    o.append(f'<text x="{(left + W - right) / 2}" y="{yb + 34}" text-anchor="middle">minutes since the load began</text>')
    ly = H - 10
    legend = [('<rect x="{x}" y="{y}" width="14" height="10" fill="#eee" stroke="#999"/>', "warm-up"),
              ('<rect x="{x}" y="{y}" width="14" height="10" fill="#ffbb78"/>', "retrain (start to swap)"),
              ('<line x1="{x}" y1="{y5}" x2="{x14}" y2="{y5}" stroke="#9467bd" stroke-width="1.5" stroke-dasharray="4,3"/>', "rollback"),
              ('<path d="M{x7},{y} l-4,8 h8 z" fill="#7f7f7f"/>', "snapshot finished (in that segment)")]
    x = left
    for shape, text in legend:
        o.append(shape.format(x=x, y=ly - 10, y5=ly - 5, x14=x + 14, x7=x + 7))
        o.append(f'<text x="{x + 20}" y="{ly}">{esc(text)}</text>')
        x += 40 + 7 * len(text)
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def nice_max(x):
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above x."""
    p = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= x:
            return m * p
    return 10 * p


def nice_step(x):
    for s in (0.5, 1, 2, 5, 10, 15, 30, 60):
        if s >= x:
            return s
    return 120


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("load")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--pid", type=int, required=True)
    a.add_argument("--duration", type=float, required=True)
    a.add_argument("--segment", type=int, default=10)
    a.add_argument("--lua", required=True)
    a.add_argument("--connections", type=int, default=16)
    a.add_argument("--delay-ms", type=float, default=0)
    a.add_argument("--users", type=int, default=100000)
    a.add_argument("--items", type=int, default=10000)
    a.add_argument("--control-min", type=float, default=60)
    a.add_argument("--control-max", type=float, default=120)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--samples", required=True)
    a.add_argument("--actions", required=True)
    a = sub.add_parser("burst")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--threads", type=int, default=16)
    a.add_argument("--max-seconds", type=float, default=30)
    a.add_argument("--users", type=int, default=100000)
    a.add_argument("--items", type=int, default=10000)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--out", required=True)
    a = sub.add_parser("verify")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--burst", required=True)
    a.add_argument("--restart-seconds", type=float, default=math.nan)
    a.add_argument("--out", required=True)
    a = sub.add_parser("report")
    for name in ("samples", "actions", "loss", "meta", "md", "svg"):
        a.add_argument(f"--{name}", required=True)
    a.add_argument("--warmup", type=float, required=True)
    args = p.parse_args()
    {"load": cmd_load, "burst": cmd_burst, "verify": cmd_verify, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
