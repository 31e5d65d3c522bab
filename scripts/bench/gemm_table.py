#!/usr/bin/env python3
"""Collect the GEMM benchmark results into the markdown tables of docs/bench-gemm.md.

    python3 scripts/bench/gemm_table.py --threads 2 \
        --criterion RUN1/criterion [RUN2/criterion ...] --torch torch_t2_run1.json [...]

Each --criterion directory is a copy of target/criterion after `cargo bench --bench gemm`
(HOOKLENS_BENCH_THREADS=T); each --torch file is written by gemm_torch.py --json. With several
runs, every entry (of every implementation alike) takes the fastest of its runs' medians, which
damps interference from other work on a shared machine.
"""

import argparse
import json
import os

SHAPES = [
    ("gpt2 attn out", 768, 768),
    ("gpt2 qkv", 768, 2304),
    ("gpt2 mlp up", 768, 3072),
    ("gpt2 mlp down", 3072, 768),
    ("gpt2 unembed", 768, 50257),
    ("smollm2 q/o", 576, 576),
    ("smollm2 k/v", 576, 192),
    ("smollm2 mlp up", 576, 1536),
    ("smollm2 mlp down", 1536, 576),
    ("smollm2 unembed", 576, 49152),
]
MS = [1, 16, 256, 2304]
IMPLS = ["hooklens", "hooklens_avx2", "matrixmultiply", "plain"]


def median_ns(dirs, group, impl, key):
    best = None
    for d in dirs:
        path = os.path.join(d, group, impl, key, "new", "estimates.json")
        if os.path.exists(path):
            with open(path) as f:
                v = json.load(f)["median"]["point_estimate"]
            best = v if best is None else min(best, v)
    return best


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--criterion", nargs="+", required=True)
    ap.add_argument("--torch", nargs="*", default=[])
    args = ap.parse_args()
    t = args.threads
    torch_s = {}
    for path in args.torch:
        with open(path) as f:
            for key, s in json.load(f)["seconds"].items():
                torch_s[key] = min(s, torch_s.get(key, s))

    print(f"#### {t} thread{'s' if t > 1 else ''}: GFLOP/s (2·M·K·N / median time), weights hot\n")
    print("| shape | M×K×N | hooklens | hooklens avx2 | matrixmultiply | torch | plain | "
          "vs matrixmultiply | vs torch |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for m in MS:
        for name, k, n in SHAPES:
            key = f"{m}x{k}x{n}"
            flops = 2.0 * m * k * n
            g = {}
            for impl in IMPLS:
                ns = median_ns(args.criterion, f"gemm_t{t}", impl, key)
                g[impl] = None if ns is None else flops / ns
            g["torch"] = flops / torch_s[key] / 1e9 if key in torch_s else None
            if all(v is None for v in g.values()):
                continue
            ours = g["hooklens"]
            r_mm = None if ours is None or g["matrixmultiply"] is None else ours / g["matrixmultiply"]
            r_t = None if ours is None or g["torch"] is None else ours / g["torch"]
            print(f"| {name} | {key} | {fmt(ours)} | {fmt(g['hooklens_avx2'])} | "
                  f"{fmt(g['matrixmultiply'])} | {fmt(g['torch'])} | {fmt(g['plain'])} | "
                  f"{fmt(r_mm, 2)} | {fmt(r_t, 2)} |")

    print(f"\n#### {t} thread{'s' if t > 1 else ''}: peak\n")
    for impl, flops_per_iter in [("avx2_fma", 12 * 8 * 2), ("avx512_fma", 24 * 16 * 2)]:
        ns = median_ns(args.criterion, f"peak_t{t}", impl, "1M")
        if ns is not None:
            per_core = flops_per_iter * (1 << 20) / ns
            width = 32 if impl == "avx2_fma" else 64
            print(f"- {impl}: {per_core * t:.1f} GFLOP/s on {t} core(s) "
                  f"({per_core / width:.2f} GHz effective at {width} FLOP/cycle/core)")

    bw_ns = median_ns(args.criterion, f"bandwidth_t{t}", "sum", "512MiB")
    bw = None if bw_ns is None else (512 << 20) / bw_ns  # GB/s
    print(f"\n#### {t} thread{'s' if t > 1 else ''}: batch 1, weights streamed from memory\n")
    print(f"Streaming-sum read bandwidth (512 MiB buffer, {t} thread{'s' if t > 1 else ''}): "
          f"**{fmt(bw)} GB/s**.\n")
    print("| shape | 1×K×N | packed MB | time µs | GB/s | bytes/bandwidth µs | "
          "time / (bytes/bandwidth) |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for name, k, n in SHAPES:
        key = f"1x{k}x{n}"
        ns = median_ns(args.criterion, f"cold_t{t}", "hooklens", key)
        if ns is None:
            continue
        nbytes = -(-n // 16) * 16 * k * 4
        ideal = None if bw is None else nbytes / bw / 1e3
        print(f"| {name} | {key} | {nbytes / 1e6:.2f} | {ns / 1e3:.1f} | {nbytes / ns:.1f} | "
              f"{fmt(ideal)} | {fmt(None if ideal is None else ns / 1e3 / ideal, 2)} |")


if __name__ == "__main__":
    main()
