#!/usr/bin/env python3
"""Command-line option test for `osprey`.

Runs every command with numeric options that are huge, negative, zero, NaN or infinite where that
makes no sense, and checks that each is refused as a usage error (exit 64, a line `Error: --option
...` on stderr, after at most what the command read) before anything is stored, never a trap, a
crash or a hang (the bounds live in Sources/osprey/OptionBounds.swift; docs/operations.md,
"Configuration"). Then checks that values in range still run.

Starts no server and writes only in a temporary directory. Python 3 standard library only.

Usage: scripts/cli-test.py [--binary .build/debug/osprey]
Prints `cli-test: N passed, M failed` and exits 1 if any case failed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 20.0
BIG = "9223372036854775807"  # Int.max

# (command and its required options, the option under test and its value, the text the error must contain)
REFUSED = [
    # serve: refused when parsed, before the data directory is looked at
    (["serve"], ["--port", "99999"], "--port must be between 0 and 65535"),
    (["serve"], ["--port=-1"], "--port must be between 0 and 65535"),
    (["serve"], ["--max-body-bytes", BIG], "--max-body-bytes must be between"),
    (["serve"], ["--snapshot-observations", "0"], "--snapshot-observations must be at least 1"),
    (["serve"], ["--keep-versions", "0"], "--keep-versions must be at least 1"),
    (["serve"], ["--stale-window", BIG], "--stale-window must be between"),
    (["serve"], ["--stale-window", "1000000000000"], "--stale-window must be between"),
    (["serve"], ["--retrain-window", "0"], "--retrain-window must be at least 1"),
    (["serve"], ["--stale-threshold", "inf"], "--stale-threshold must be a number greater than 1"),
    (["serve"], ["--validation-fraction", "nan"], "--validation-fraction must be a number between 0"),
    (["serve"], ["--prediction-cache", BIG], "--prediction-cache must be between 0 and"),
    (["serve"], ["--feature-cache", BIG], "--feature-cache must be between 0 and"),
    (["serve"], ["--computed-feature-cache=-1"], "--computed-feature-cache must be between 0 and"),
    (["serve"], ["--cache-repopulate=-1"], "--cache-repopulate must be between 0 and"),
    (["serve"], ["--explore-shortlist", "0"], "--explore-shortlist must be between 1 and"),
    (["serve"], ["--thompson-samples", "1000000"], "--thompson-samples must be between 0 and 10000"),
    (["serve"], ["--decision-retention", "1e300"], "--decision-retention must be a number between 0 and"),
    (["serve"], ["--max-decisions=-1"], "--max-decisions must be at least 0"),
    (["serve"], ["--hot-users=-1"], "--hot-users must be a number of users"),
    (["serve"], ["--hot-items=0"], "--hot-items must be a number of items"),
    (["serve"], ["--item-updates=maybe"], "--item-updates must be `on` or `off`"),
    (["serve"], ["--retrain-in=spark"], "--retrain-in must be `worker` or `server`"),
    (["serve"], ["--item-publish-ms=0"], "--item-publish-ms"),
    (["serve"], ["--max-models", "0"], "--max-models must be between 1 and 10000"),
    (["serve"], ["--event-loops", "0"], "--event-loops must be between 1 and 256"),
    (["serve"], ["--scan-threads", "100000"], "--scan-threads must be between 0 and 256"),
    # access tokens (docs/operations.md, "Access tokens"): no open server off loopback by mistake
    (["serve"], ["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0 without access tokens"),
    (["serve"], ["--tokens-file", "{tmp}/no-such-tokens"], "cannot read --tokens-file"),
    (["quickstart"], ["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0 without access tokens"),
    # TLS (docs/operations.md, "TLS"): both files or neither, each read and checked before binding
    (["serve"], ["--tls-cert", "{tmp}/cert.pem"], "--tls-cert needs --tls-key"),
    (["serve"], ["--tls-key", "{tmp}/key.pem"], "--tls-key needs --tls-cert"),
    (["serve"], ["--tls-cert", "{tmp}/no-such-cert.pem", "--tls-key", "{tmp}/not-pem.txt"], "--tls-cert {tmp}/no-such-cert.pem does not exist"),
    (["serve"], ["--tls-cert", "{tmp}/not-pem.txt", "--tls-key", "{tmp}/no-such-key.pem"], "--tls-key {tmp}/no-such-key.pem does not exist"),
    (["serve"], ["--tls-cert", "{tmp}/not-pem.txt", "--tls-key", "{tmp}/not-pem.txt"], "--tls-cert {tmp}/not-pem.txt holds no PEM certificate"),
    (["serve"], ["--tls-cert", "{tmp}", "--tls-key", "{tmp}/not-pem.txt"], "--tls-cert {tmp} is a directory"),
    (["quickstart"], ["--tls-cert", "{tmp}/cert.pem"], "Unknown option '--tls-cert'"),
    # quickstart: the same options, refused before it generates or trains anything
    (["quickstart"], ["--stale-window", BIG], "--stale-window must be between"),
    (["quickstart"], ["--decision-retention", "1e300"], "--decision-retention must be a number between 0 and"),
    # generate
    (["generate", "--out", "{tmp}/g.csv"], ["--users", "1000000000000"], "--users must be between 1 and"),
    (["generate", "--out", "{tmp}/g.csv"], ["--users", "0"], "--users must be between 1 and"),
    (["generate", "--out", "{tmp}/g.csv"], ["--items=-1"], "--items must be between 1 and"),
    (["generate", "--out", "{tmp}/g.csv"], ["--ratings", "0"], "--ratings must be between 1 and"),
    (["generate", "--out", "{tmp}/g.csv"], ["--dim", "100000000"], "--dim must be between 1 and 512"),
    (["generate", "--out", "{tmp}/g.csv"], ["--noise", "1e308"], "--noise must be a number between 0 and"),
    (["generate", "--out", "{tmp}/g.csv"], ["--zipf", "50"], "--zipf must be a number between 0 and 3"),
    (["generate", "--out", "{tmp}/g.csv"], ["--zipf", "nan"], "--zipf must be a number between 0 and 3"),
    (["generate", "--out", "{tmp}/g.csv"], ["--drift", "2"], "--drift must be a number between 0 and 1"),
    (["generate", "--out", "{tmp}/g.csv"], ["--drift-at=-1"], "--drift-at must be a number between 0 and 1"),
    (["generate", "--out", "{tmp}/g.csv"], ["--users", "10000000", "--items", "10000000", "--dim", "20"], "(--users + --items) × --dim must be at most"),
    (["generate", "--out", "{tmp}/g.csv"], ["--users", "3", "--items", "3", "--ratings", "5"], "more than half of the 3 × 3"),
    (["generate", "--out", "{tmp}/g.csv", "--items-out", "{tmp}/gi.csv"], ["--attribute-share", "1.5"], "--attribute-share must be a number between 0 and 1"),
    (["generate", "--out", "{tmp}/g.csv", "--items-out", "{tmp}/gi.csv"], ["--attribute-share", "nan"], "--attribute-share must be a number between 0 and 1"),
    (["generate", "--out", "{tmp}/g.csv"], ["--attribute-share", "0.5"], "--attribute-share needs --items-out"),
    # train (refused before the data directory is created) and evaluate
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--items", "{tmp}/bad-items.csv"], "--items: {tmp}/bad-items.csv line 3: "),
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--items", "{tmp}/missing-items.csv"], "--items: "),
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--dim", "100000000"], "--dim must be between 1 and 512"),
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--dim", "0"], "--dim must be between 1 and 512"),
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--iterations", "0"], "--iterations must be between 1 and 1000"),
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--lambda=-1"], "--lambda must be a positive number"),
    (["train", "--data-dir", "{tmp}/data", "--model", "m", "--ratings", "{tmp}/none.csv"], ["--lambda", "nan"], "--lambda must be a positive number"),
    (["evaluate", "--ratings", "{tmp}/none.csv"], ["--iterations", "100000000"], "--iterations must be between 1 and 1000"),
    (["evaluate", "--ratings", "{tmp}/none.csv"], ["--item-lambda", "inf"], "--item-lambda must be a positive number"),
    # import (refused before the data directory is created)
    (["import", "--data-dir", "{tmp}/data", "--model", "m", "--items", "{tmp}/factors.csv"], ["--lambda=-1"], "--lambda must be a positive number"),
    (["import", "--data-dir", "{tmp}/data", "--model", "m", "--items", "{tmp}/factors.csv"], ["--scale-lambda"], "--scale-lambda needs --lambda"),
    (["import", "--data-dir", "{tmp}/data", "--model", "m", "--items", "{tmp}/factors.csv"], [], "model `m` is new: give its users' ridge penalty with --lambda"),
    (["import", "--data-dir", "{tmp}/data", "--model", "m", "--lambda", "1"], ["--items", "{tmp}/bad-factors.json"], "--items: {tmp}/bad-factors.json line 2: has 3 factors where the first row has 2"),
    (["import", "--data-dir", "{tmp}/data", "--model", "m", "--lambda", "1", "--items", "{tmp}/factors.csv"], ["--users", "{tmp}/bad-factors.json"], "--users: "),
    (["import", "--data-dir", "{tmp}/data", "--model", "m", "--lambda", "1", "--items", "{tmp}/factors.csv"], ["--users", "{tmp}/factors3.csv"], "--users has 3 factors a vector and --items 2"),
    # simulate
    (["simulate"], ["--rounds", "1000000000000"], "--rounds must be between 1 and"),
    (["simulate"], ["--users", "0"], "--users must be between 1 and"),
    (["simulate"], ["--items", "1000000000000"], "--items must be between 1 and"),
    (["simulate"], ["--candidates", "0"], "--candidates must be between 1 and 2000"),
    (["simulate"], ["--dim", "100000000"], "--dim must be between 1 and 512"),
    (["simulate"], ["--noise=-1"], "--noise must be a number between 0 and"),
    (["simulate"], ["--user-zipf", "1e9"], "--user-zipf must be a number between 0 and"),
    (["simulate"], ["--clusters", "1000000000"], "--clusters must be between 0 and"),
    (["simulate"], ["--cluster-spread", "5"], "--cluster-spread must be a number between 0 and 1"),
    (["simulate"], ["--user-pool=-1"], "--user-pool must be between 0 and 2000"),
    (["simulate"], ["--series-every", "0"], "--series-every must be at least 1"),
    (["simulate"], ["--lambda", "inf"], "--lambda must be a positive number"),
    (["simulate"], ["--users", "1000000", "--dim", "100"], "ridge states of (--dim + 1)² values: at most"),
    # cold-start
    (["cold-start", "--ratings", "{tmp}/none.csv", "--items", "{tmp}/none.csv"], ["--new-share", "0"], "--new-share must be a number between 0 and 1"),
    (["cold-start", "--ratings", "{tmp}/none.csv", "--items", "{tmp}/none.csv"], ["--first=-1"], "--first must be between 0 and 1000"),
    # evaluate-policy
    (["evaluate-policy", "--data-dir", "{tmp}/data", "--name", "m"], ["--limit", "0"], "--limit must be at least 1"),
    (["evaluate-policy", "--data-dir", "{tmp}/data", "--name", "m"], ["--bootstrap", "1000000000000"], "--bootstrap must be between 0 and"),
    (["evaluate-policy", "--data-dir", "{tmp}/data", "--name", "m"], ["--samples", "0"], "--samples must be between 1 and 10000"),
    (["evaluate-policy", "--data-dir", "{tmp}/data", "--name", "m"], ["--samples", "1000000000000"], "--samples must be between 1 and 10000"),
    (["evaluate-policy", "--data-dir", "{tmp}/data", "--name", "m"], ["--version", "0"], "--version must be at least 1"),
    # router-config
    (["router-config", "--node", "a=127.0.0.1:1"], ["--buckets", "0"], "--buckets must be in 1...65536"),
    (["router-config", "--node", "a=127.0.0.1:1"], ["--check-ms", BIG], "--check-ms must be in 10...60000"),
    (["router-config"], ["--node", "a=127.0.0.1:99999"], "the address must be HOST:PORT with a port in 1...65535"),
    (["router-config"], ["--node", "a b=127.0.0.1:1"], "expected NAME=HOST:PORT"),
    (["router-config", "--node", "a=127.0.0.1:1"], ["--node", "a=127.0.0.1:2"], "each node needs its own name"),
    # --store takes a PostgreSQL URL, checked before anything is opened
    (["models"], ["--store", "mysql://u@h/db"], "--store takes a PostgreSQL URL"),
]

# Values in range run to the end (exit 0).
ACCEPTED = [
    ["generate", "--users", "50", "--items", "40", "--ratings", "500", "--dim", "3", "--zipf", "3", "--drift", "1", "--out", "{tmp}/ok.csv"],
    ["generate", "--users", "50", "--items", "40", "--ratings", "500", "--items-out", "{tmp}/ok-items.csv", "--attribute-share", "0.3", "--out", "{tmp}/ok2.csv"],
    ["train", "--data-dir", "{tmp}/trained", "--model", "m", "--ratings", "{tmp}/ok2.csv", "--items", "{tmp}/ok-items.csv", "--dim", "3"],
    ["cold-start", "--ratings", "{tmp}/ok2.csv", "--items", "{tmp}/ok-items.csv", "--dim", "3", "--new-share", "0.3", "--first", "2"],
    ["import", "--data-dir", "{tmp}/imported", "--model", "m", "--items", "{tmp}/factors.csv", "--lambda", "0.5"],
    ["import", "--data-dir", "{tmp}/trained", "--model", "m", "--items", "{tmp}/factors3.csv"],
    ["simulate", "--rounds", "300", "--users", "20", "--items", "50", "--policies", "greedy", "--series-every", "1000"],
    ["router-config", "--node", "a=127.0.0.1:18001", "--node", "b=127.0.0.1:18002", "--buckets", "16", "--out", "{tmp}/haproxy.cfg"],
]


def tls_cases(tmp):
    """With the `openssl` command: a real certificate with a key that is not its own, with its key
    in the certificate's place, and a good pair off loopback without tokens (none without the
    command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        print("cli-test: no openssl command, the certificate-and-key cases are skipped")
        return []
    for key in ("key.pem", "other-key.pem"):
        subprocess.run([openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-out", os.path.join(tmp, key)], check=True, capture_output=True)
    subprocess.run([openssl, "req", "-x509", "-key", os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem"),
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    return [
        (["serve"], ["--tls-cert", "{tmp}/cert.pem", "--tls-key", "{tmp}/other-key.pem"],
         "--tls-key {tmp}/other-key.pem is not the private key of the certificate in {tmp}/cert.pem"),
        (["serve"], ["--tls-cert", "{tmp}/key.pem", "--tls-key", "{tmp}/cert.pem"], "--tls-cert {tmp}/key.pem holds no PEM certificate"),
        (["serve"], ["--tls-cert", "{tmp}/cert.pem", "--tls-key", "{tmp}/not-pem.txt"], "--tls-key {tmp}/not-pem.txt holds no PEM private key"),
        # TLS does not stand in for access tokens
        (["serve"], ["--host", "0.0.0.0", "--tls-cert", "{tmp}/cert.pem", "--tls-key", "{tmp}/key.pem"],
         "refusing to serve on 0.0.0.0 without access tokens"),
    ]


def run(binary, args, cwd):
    """(exit code or None on a timeout, stderr text). Run in `cwd`, so that a command that is not
    refused writes its default data directory there."""
    try:
        proc = subprocess.run([binary] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stderr.decode(errors="replace")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/osprey", help="osprey binary (default: %(default)s)")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"FAIL: {binary} is not an executable")
        print("cli-test: 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="osprey-cli-test-")
    passed, failures = 0, []
    try:
        with open(os.path.join(tmp, "not-pem.txt"), "w") as f:
            f.write("not a certificate\n")
        with open(os.path.join(tmp, "bad-items.csv"), "w") as f:
            f.write("item,genres\ni1,Drama\ni1,Comedy\n")
        # Factors: items of d=2 for a new model, of d=3 for a new version of the one `train` makes.
        with open(os.path.join(tmp, "factors.csv"), "w") as f:
            f.write("id,f0,f1\ni1,0.5,0.1\ni2,-0.2,0.3\n")
        with open(os.path.join(tmp, "factors3.csv"), "w") as f:
            f.write("id,f0,f1,f2,offset\n" + "".join(f"i{k},0.{k},0.2,-0.1,3.5\n" for k in range(1, 41)))
        with open(os.path.join(tmp, "bad-factors.json"), "w") as f:
            f.write('{"id": 1, "features": [0.1, 0.2]}\n{"id": 2, "features": [0.1, 0.2, 0.3]}\n')
        refused = REFUSED + tls_cases(tmp)
        for base, option, expected in refused:
            argv = [a.replace("{tmp}", tmp) for a in base + option]
            expected = expected.replace("{tmp}", tmp)
            shown = "osprey " + " ".join(base[:1] + option)
            code, err = run(binary, argv, tmp)
            if code is None:
                failures.append(f"{shown}: still running after {TIMEOUT:.0f}s, expected a usage error")
            elif code != 64 or not re.search(r"(^|\n)Error: ", err) or expected not in err or "Fatal error" in err or "crashed" in err:
                what = f"killed by signal {-code}" if code < 0 else f"exit {code}"
                failures.append(f"{shown}: {what}, expected exit 64 and `Error: ...{expected}`; stderr: {err.strip()[-300:]!r}")
            else:
                passed += 1
        for made in ("data", "osprey-data"):
            if os.path.exists(os.path.join(tmp, made)):
                failures.append(f"a refused command created the data directory {made}")
        for argv in ACCEPTED:
            argv = [a.replace("{tmp}", tmp) for a in argv]
            code, err = run(binary, argv, tmp)
            if code != 0:
                failures.append(f"osprey {' '.join(argv)}: exit {code}, expected 0; stderr: {err.strip()[-300:]!r}")
            else:
                passed += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print(f"  - {f}")
    print(f"cli-test: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
