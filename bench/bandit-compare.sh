#!/usr/bin/env bash
# Osprey's exploration policies against Vowpal Wabbit's contextual bandits on the same world
# (docs/operations.md, "The simulator and evaluate-policy"; results in BENCHMARKS.md, plot in
# docs/regret.svg).
#
#   bench/bandit-compare.sh          ROUNDS=50000 SEED=1 by default; ROUNDS=5000 for a smoke run
#
# 1. `osprey simulate` runs greedy, ε-greedy, LinUCB and Thompson through the default world
#    (200 users, 2000 items in 10 genres, each user offered the same 20 candidates every visit,
#    d=10, reward noise σ=1) and writes the world with its rounds (--export-world) and each
#    policy's cumulative regret every 500 rounds (--series).
# 2. bench/baselines/vw_bandit.py replays the very same rounds (users, candidates, reward noise)
#    through `vw --cb_explore_adf` (vowpalwabbit 9.11.9, pinned in bench/baselines/vw-requirements.txt,
#    installed into .bench-data/vw-venv if missing): epsilon-greedy (ε 0.02, 0.05, 0.1) and
#    squarecb (gamma_scale 10, 100), at VW's default learning rate and at -l 5; features: user id crossed (-q UI) with the item's
#    factor vector and bias feature, plus the item's offset.
# 3. Prints cumulative regret at checkpoints for every policy and configuration, the ratio best
#    Osprey / best VW after the last round (target ≤ 0.8), and writes docs/regret.svg.
# Knobs: ROUNDS (50000), SEED (1), OSPREY_POLICIES, VW_CONFIGS ("name=vw args;…"), TIMEOUT per
# step in seconds (1800). Runs no servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${ROUNDS:-50000}; SEED=${SEED:-1}; TIMEOUT=${TIMEOUT:-1800}
OSPREY_POLICIES=${OSPREY_POLICIES:-"greedy,epsilon_greedy(0.05),linucb(0.5),linucb(1.0),thompson(0.25),thompson(0.5)"}

VENV=.bench-data/vw-venv
if [ ! -x "$VENV/bin/python" ] || ! cmp -s bench/baselines/vw-requirements.txt "$VENV/requirements.txt"; then
  echo "== installing Vowpal Wabbit into $VENV (PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/baselines/vw-requirements.txt
  cp bench/baselines/vw-requirements.txt "$VENV/requirements.txt"
fi

echo "== building osprey (release)"
build_release
OUT=.bench-data/bandit-s${SEED}-r${ROUNDS}
mkdir -p "$OUT"

echo "== Osprey: osprey simulate --rounds $ROUNDS --seed $SEED"
timeout "$TIMEOUT" "$BIN" simulate --rounds "$ROUNDS" --seed "$SEED" --policies "$OSPREY_POLICIES" \
  --export-world "$OUT/world.json" --series "$OUT/osprey.csv" | tee "$OUT/osprey.txt"

echo "== Vowpal Wabbit: --cb_explore_adf on the same rounds"
VW_ARGS=()
if [ -n "${VW_CONFIGS:-}" ]; then VW_ARGS=(--configs "$VW_CONFIGS"); fi
timeout "$TIMEOUT" "$VENV/bin/python" bench/baselines/vw_bandit.py run "$OUT/world.json" "$OUT/vw.csv" \
  --rounds "$ROUNDS" --seed "$SEED" "${VW_ARGS[@]}"

echo "== cumulative regret (lower is better)"
mkdir -p docs
"$VENV/bin/python" bench/baselines/vw_bandit.py report "$OUT/osprey.csv" "$OUT/vw.csv" docs/regret.svg
echo "plot: docs/regret.svg"
