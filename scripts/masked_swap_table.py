#!/usr/bin/env python3
"""Prints the masked swap bench results (criterion JSON) as a markdown table.

Usage: scripts/masked_swap_table.py [TARGET_DIR] [PREFIX]   (defaults: target, any device)
GB/s = bytes of one [N, L] f32 tensor / mean time; ratio = composition time / fused time.
"""
import json
import os
import sys

target = sys.argv[1] if len(sys.argv) > 1 else "target"
prefix = sys.argv[2] if len(sys.argv) > 2 else ""
root = os.path.join(target, "criterion")
rows = {}
for dirpath, _, files in os.walk(root):
    if not dirpath.endswith(os.sep + "new") or "benchmark.json" not in files:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        bench = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        est = json.load(f)
    group = bench["group_id"]
    if not group.startswith(prefix) or "/N" not in group:
        continue
    device, shape = group.split("/", 1)
    n, l = (int(x[1:]) for x in shape.split("_"))
    secs = est["mean"]["point_estimate"] / 1e9
    nbytes = bench["throughput"]["Bytes"]
    func, param = bench["function_id"], bench.get("value_str") or ""
    rows.setdefault((device, n, l), {})[(func, param)] = (secs, nbytes / secs / 1e9)

def gbs(d, key):
    return f"{d[key][1]:.2f}" if key in d else "-"

print("| device | N | L | dims | fused GB/s | composition GB/s | fused speed-up | in-place GB/s | copy GB/s |")
print("|---|---|---|---|---|---|---|---|---|")
for (device, n, l) in sorted(rows):
    d = rows[(device, n, l)]
    for sel in ["1", "64", "all"]:
        f, c = d.get(("fused", sel)), d.get(("composition", sel))
        ratio = f"{c[0] / f[0]:.1f}x" if f and c else "-"
        print(f"| {device} | {n} | {l} | {sel} | {gbs(d, ('fused', sel))} | "
              f"{gbs(d, ('composition', sel))} | {ratio} | {gbs(d, ('inplace', sel))} | "
              f"{gbs(d, ('copy', ''))} |")
