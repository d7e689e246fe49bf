#!/usr/bin/env bash
# New items (the item cold start, BENCHMARKS.md): held-out RMSE on items never seen in training,
# scored (a) as the mean trained item (a model without attributes), (b) from their attributes
# through the attribute map, (c) from their attributes and then their first 5 ratings learned
# online (`osprey cold-start`). On generated data whose attributes explain a known share of each
# item's vector (`osprey generate --items-out --attribute-share`), for each share in SHARES.
#
#   bench/new-items.sh                 USERS=5000 ITEMS=2000 RATINGS=250000 DIM=20 SHARES="0.3 0.6 0.9"
#
# No server; writes bench/results/DATE-new-items.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${USERS:-5000}; ITEMS=${ITEMS:-2000}; RATINGS=${RATINGS:-250000}; DIM=${DIM:-20}; SHARES=${SHARES:-"0.3 0.6 0.9"}
build_release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/results/$(date +%F)-new-items.md
{
  echo "# New items: cold-start RMSE ($(date +%F))"
  echo
  echo "\`bench/new-items.sh\` at $(git rev-parse --short HEAD); $(nproc) cores, $(uname -m)."
  echo "Data: \`osprey generate --users $USERS --items $ITEMS --ratings $RATINGS --dim $DIM --noise 0.5 --seed 1\`"
  echo "with \`--items-out\` and \`--attribute-share S\`; model: \`osprey cold-start --dim $DIM\` (λ by validation),"
  echo "10% of the items held out of training, each scored on its ratings after its first 5."
  echo
  echo "| attribute share | new items | ratings scored | map R² (trained items) | (a) mean item | (b) attributes | (c) attributes + 5 online |"
  echo "|---|---|---|---|---|---|---|"
} > "$out"
for share in $SHARES; do
  echo "== attribute share $share" >&2
  "$BIN" generate --users "$USERS" --items "$ITEMS" --ratings "$RATINGS" --dim "$DIM" --noise 0.5 --seed 1 \
    --items-out "$work/items.csv" --attribute-share "$share" --out "$work/ratings.csv" >&2
  result=$("$BIN" cold-start --ratings "$work/ratings.csv" --items "$work/items.csv" --dim "$DIM" 2>/dev/null)
  echo "$result" >&2
  new=$(sed -n 's/^new items: \([0-9]*\), their ratings scored: \([0-9]*\).*/\1/p' <<<"$result")
  scored=$(sed -n 's/^new items: \([0-9]*\), their ratings scored: \([0-9]*\).*/\2/p' <<<"$result")
  r2=$(sed -n 's/^attribute map: held-out R² \([0-9.-]*\).*/\1/p' <<<"$result")
  a=$(sed -n 's/^(a).*RMSE \([0-9.]*\)/\1/p' <<<"$result")
  b=$(sed -n 's/^(b).*RMSE \([0-9.]*\)/\1/p' <<<"$result")
  c=$(sed -n 's/^(c).*RMSE \([0-9.]*\)/\1/p' <<<"$result")
  echo "| $share | $new | $scored | $r2 | $a | $b | $c |" >> "$out"
done
cat "$out"
