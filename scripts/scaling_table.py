#!/usr/bin/env python3
"""Prints docs/DISTRIBUTED.md's scaling table: the step time of data-parallel DeepLab-v2 training
on N machines, modelled from a measured per-image step time, the gradient size and a network
bandwidth. A ring allreduce moves 2(N-1)/N of the gradient through each machine's link per step.

    python3 scripts/scaling_table.py --image-seconds 1.74 --gradient-mb 175.8 --measured-gbps 0.77

No dependencies; numbers in, a Markdown table out.
"""
import argparse
import math

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--image-seconds", type=float, required=True, help="measured train step per image, one machine (s)")
parser.add_argument("--gradient-mb", type=float, required=True, help="float32 gradient size (MB, 1e6 bytes)")
parser.add_argument("--measured-gbps", type=float, required=True, help="measured allreduce bus bandwidth (GB/s)")
parser.add_argument("--batch", type=int, default=10, help="global batch per step (VOC protocol: 10)")
args = parser.parse_args()

links = [("measured here", args.measured_gbps), ("10 Gb/s", 10 / 8), ("25 Gb/s", 25 / 8), ("100 Gb/s", 100 / 8)]
print("| N | images per rank | compute (s) | " + " | ".join(f"{n} ({gbps:.2f} GB/s)" for n, gbps in links) + " |")
print("|---|---|---|" + "---|" * len(links))
for n in [1, 2, 4, 5, 8, 10, 16, 32, 64]:
    # Up to `batch` ranks share the protocol's global batch (the largest shard sets the pace);
    # past it every rank takes one image and the global batch grows to N (another protocol).
    per_rank = math.ceil(args.batch / n) if n <= args.batch else 1
    images = args.batch if n <= args.batch else n
    compute = per_rank * args.image_seconds
    cells = []
    for _, gbps in links:
        comm = 2 * (n - 1) / n * args.gradient_mb / 1e3 / gbps
        step = compute + comm  # no overlap: the upper bound
        # Speed-up in images per second over one machine.
        cells.append(f"{comm:.3f} + {compute:.2f} = {step:.2f} s, {images / step * args.image_seconds:.1f}x")
    label = f"{per_rank}" + ("" if n <= args.batch else f" (global batch {n})")
    print(f"| {n} | {label} | {compute:.2f} | " + " | ".join(cells) + " |")
