#!/usr/bin/env python3
"""Vowpal Wabbit's contextual bandits on Osprey's bandit world (bench/bandit-compare.sh).

  vw_bandit.py run WORLD.json OUT.csv [--rounds N] [--configs "NAME=ARGS;..."] [--seed S]
  vw_bandit.py report OSPREY.csv VW.csv SVG [--target 0.8]

`run` replays the rounds of a world exported by `osprey simulate --export-world` (the same users,
candidates and reward noise Osprey's policies saw) through `vw --cb_explore_adf`: each round is one
multi-line ADF example, a shared line with the user id (`|U u17`) and one line per candidate with the
item's factor vector and bias feature (`|I f0:.. f9:.. one:1`) and its offset μ + b_i (`|O off:..`);
`-q UI` crosses the user id with the item's vector, so VW learns per-user weights on [q_i; 1], the
same model class as Osprey's (plus global weights). VW returns a distribution over the candidates,
the action is sampled from it, the cost −reward is learned with the action's probability. Regret
= best candidate's expected reward − chosen one's, from the world's true weights. Writes the
cumulative regret every 500 rounds as CSV (round,policy,cumulative_regret).

`report` merges Osprey's and VW's series, prints cumulative regret at checkpoints, the ratio of the
best Osprey policy to the best VW configuration at the last round, and writes an SVG plot of
cumulative regret over rounds (hand-written SVG; no plotting library).
"""
import argparse
import csv
import json
import random
import sys
import time

# VW's defaults plus a learning rate tuned on the first 10,000 rounds of the default world (-l 5
# beat 0.1, 0.5, 2 and 10; --cb_type ips and dm were worse, and mtr is the only cb_type
# --cb_explore_adf accepts with squarecb in 9.11).
DEFAULT_CONFIGS = (
    "vw-epsilon(0.05)=--epsilon 0.05;"
    "vw-epsilon(0.02)-lr5=--epsilon 0.02 -l 5;"
    "vw-epsilon(0.05)-lr5=--epsilon 0.05 -l 5;"
    "vw-epsilon(0.1)-lr5=--epsilon 0.1 -l 5;"
    "vw-squarecb(10)=--squarecb --gamma_scale 10;"
    "vw-squarecb(10)-lr5=--squarecb --gamma_scale 10 -l 5;"
    "vw-squarecb(100)-lr5=--squarecb --gamma_scale 100 -l 5"
)
EVERY = 500


def run(args):
    import vowpalwabbit

    with open(args.world) as f:
        world = json.load(f)
    d = world["dimension"]
    feats = world["features"]
    offsets = world["offsets"]
    weights = world["weights"]
    rounds = world["rounds"]
    n = min(args.rounds or len(rounds["user"]), len(rounds["user"]))
    # Item lines once: the latent part (all but the bias entry, which is `one:1`) and the offset.
    item_lines = []
    for i, row in enumerate(feats):
        latent = " ".join(f"f{j}:{row[j]:.6g}" for j in range(d - 1))
        item_lines.append(f"|I {latent} one:{row[d - 1]:.6g} |O off:{offsets[i]:.6g}")

    def expected(u, i):
        w = weights[u]
        row = feats[i]
        return offsets[i] + sum(w[j] * row[j] for j in range(d))

    out = open(args.out, "w", newline="")
    writer = csv.writer(out)
    writer.writerow(["round", "policy", "cumulative_regret"])
    for spec in args.configs.split(";"):
        spec = spec.strip()
        if not spec:
            continue
        name, vw_args = spec.split("=", 1)
        vw = vowpalwabbit.Workspace(f"--cb_explore_adf -q UI --quiet --random_seed {args.seed} {vw_args}")
        rng = random.Random(args.seed)
        total = 0.0
        start = time.time()
        for t in range(n):
            u = rounds["user"][t]
            cands = rounds["candidates"][t]
            shared = f"shared |U u{u}"
            lines = [item_lines[i] for i in cands]
            pmf = vw.predict([shared] + lines)
            x = rng.random()
            a = len(cands) - 1
            acc = 0.0
            for j, p in enumerate(pmf):
                acc += p
                if x < acc:
                    a = j
                    break
            rewards = [expected(u, i) for i in cands]
            reward = rewards[a] + rounds["noise"][t]
            total += max(rewards) - rewards[a]
            labelled = [shared] + [
                (f"0:{-reward:.6g}:{max(pmf[j], 1e-6):.6g} " if j == a else "") + line for j, line in enumerate(lines)
            ]
            vw.learn(labelled)
            if (t + 1) % EVERY == 0 or t + 1 == n:
                writer.writerow([t + 1, name, f"{total:.4f}"])
        vw.finish()
        out.flush()
        print(f"{name:<20} cumulative regret after {n} rounds: {total:10.1f}   ({time.time() - start:.1f} s)", flush=True)
    out.close()


def load(path):
    series = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            series.setdefault(row["policy"], []).append((int(row["round"]), float(row["cumulative_regret"])))
    return series


def at(points, r):
    best = None
    for rr, v in points:
        if rr <= r:
            best = v
    return best


def report(args):
    osprey = load(args.osprey)
    vw = load(args.vw)
    last = min(max(r for r, _ in pts) for pts in list(osprey.values()) + list(vw.values()))
    marks = [m for m in (1000, 5000, 10000, 20000, 50000, 100000) if m < last] + [last]
    print("| policy | " + " | ".join(f"{m:,}" for m in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    for label, group in (("Osprey", osprey), ("VW", vw)):
        for name, pts in group.items():
            cells = " | ".join(f"{at(pts, m):.0f}" if at(pts, m) is not None else "—" for m in marks)
            print(f"| {label} `{name}` | {cells} |")
    best_o = min(osprey, key=lambda k: at(osprey[k], last))
    best_v = min(vw, key=lambda k: at(vw[k], last))
    ratio = at(osprey[best_o], last) / at(vw[best_v], last)
    verdict = "meets" if ratio <= args.target else "misses"
    print(f"\nbest Osprey: {best_o} {at(osprey[best_o], last):.1f}; best VW: {best_v} {at(vw[best_v], last):.1f}; "
          f"ratio {ratio:.3f} after {last:,} rounds ({verdict} the target ≤ {args.target})")
    svg(args.svg, osprey, vw, last, f"ratio best Osprey / best VW after {last:,} rounds: {ratio:.2f}")


def svg(path, osprey, vw, last, subtitle):
    width, height, left, right, top, bottom = 900, 520, 70, 230, 50, 50
    ymax = max(v for group in (osprey, vw) for pts in group.values() for r, v in pts if r <= last)
    ymax = float(f"{ymax * 1.05:.2g}")
    def x(r):
        return left + (width - left - right) * r / last
    def y(v):
        return top + (height - top - bottom) * (1 - v / ymax)
    colors = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="22" font-size="15">Cumulative regret over rounds: Osprey policies (solid) vs Vowpal Wabbit --cb_explore_adf (dashed)</text>',
             f'<text x="{left}" y="40" fill="#555">{subtitle}</text>']
    for k in range(6):
        v = ymax * k / 5
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{width - right}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    for k in range(6):
        r = last * k / 5
        parts.append(f'<text x="{x(r):.1f}" y="{height - bottom + 18}" text-anchor="middle">{r:,.0f}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 10}" text-anchor="middle">round</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="none" stroke="#333"/>')
    legend_y = top + 10
    for n, (name, pts, dashed) in enumerate([(k, v, False) for k, v in osprey.items()] + [(k, v, True) for k, v in vw.items()]):
        color = colors[n % len(colors)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x(r):.1f},{y(v):.1f}" for i, (r, v) in enumerate([(0, 0.0)] + [p for p in pts if p[0] <= last]))
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(f'<line x1="{width - right + 12}" y1="{legend_y}" x2="{width - right + 40}" y2="{legend_y}" stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{width - right + 46}" y="{legend_y + 4}">{name}</text>')
        legend_y += 18
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("world")
    r.add_argument("out")
    r.add_argument("--rounds", type=int, default=0)
    r.add_argument("--configs", default=DEFAULT_CONFIGS)
    r.add_argument("--seed", type=int, default=1)
    q = sub.add_parser("report")
    q.add_argument("osprey")
    q.add_argument("vw")
    q.add_argument("svg")
    q.add_argument("--target", type=float, default=0.8)
    args = p.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
