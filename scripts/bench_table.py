#!/usr/bin/env python3
"""Prints criterion results as a markdown table: group, bench, mean time, throughput.

Usage: scripts/bench_table.py [TARGET_DIR] [GROUP_PREFIX ...]   (defaults: target, every group)
Throughput: GB/s for byte throughputs, G/s for element throughputs (GFLOP/s in the
autoencoder bench, which counts one element per floating-point operation).
"""
import json
import os
import sys

target = sys.argv[1] if len(sys.argv) > 1 else "target"
prefixes = sys.argv[2:] or [""]
root = os.path.join(target, "criterion")
rows = []
for dirpath, _, files in os.walk(root):
    if not dirpath.endswith(os.sep + "new") or "benchmark.json" not in files:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        bench = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        est = json.load(f)
    group = bench["group_id"]
    if not any(group.startswith(p) for p in prefixes):
        continue
    name = bench["function_id"] or ""
    if bench.get("value_str"):
        name += "/" + bench["value_str"]
    secs = est["mean"]["point_estimate"] / 1e9
    tp = bench.get("throughput") or {}
    if "Bytes" in tp:
        rate = f"{tp['Bytes'] / secs / 1e9:.2f} GB/s"
    elif "Elements" in tp:
        rate = f"{tp['Elements'] / secs / 1e9:.2f} G/s"
    else:
        rate = "-"
    rows.append((group, name, secs, rate))

def fmt(secs):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if secs >= scale:
            return f"{secs / scale:.3g} {unit}"
    return f"{secs / 1e-9:.3g} ns"

print("| group | bench | mean | throughput |")
print("|---|---|---|---|")
for group, name, secs, rate in sorted(rows):
    print(f"| {group} | {name} | {fmt(secs)} | {rate} |")
