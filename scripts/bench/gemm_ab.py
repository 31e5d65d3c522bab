#!/usr/bin/env python3
"""hooklens GEMM against torch.matmul at large M, interleaved, for figures that survive drift.

    cargo build --release --example gemm_tune
    /work/refvenv/bin/python scripts/bench/gemm_ab.py --threads 2 --rounds 6 [--m 2304]

This machine's speed drifts by 10-20 % over minutes, so two separate runs (gemm_all.sh) can put
either side ahead by chance. Here each round times every shape twice, hooklens then torch (the
order alternates between rounds), so each pair sees the same machine; per shape it reports the
median over rounds of each side's median call and the median and range of the per-round ratios.
Both sides write into a preallocated output; torch runs the tied unembeddings as x @ W.T.
"""

import argparse
import re
import statistics
import subprocess
import time

import torch

from gemm_torch import SHAPES


def torch_median(m, k, n, transposed, reps):
    w = torch.rand(n, k) - 0.5 if transposed else torch.rand(k, n) - 0.5
    x = torch.rand(m, k) - 0.5
    out = torch.empty(m, n)
    wt = w.t() if transposed else w
    with torch.inference_mode():
        torch.matmul(x, wt, out=out)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(x, wt, out=out)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ours_median(binary, m, k, n, threads, reps):
    text = subprocess.run(
        [binary, str(m), str(k), str(n), str(threads), "0", "0", "0", str(reps)],
        check=True, capture_output=True, text=True,
    ).stdout
    gflops = float(re.search(r"median ([0-9.]+) GFLOP/s", text).group(1))
    return 2 * m * k * n / (gflops * 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--m", type=int, default=2304)
    ap.add_argument("--bin", default="target/release/examples/gemm_tune")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, rounds {args.rounds}")
    m = args.m
    pairs = {name: [] for name, *_ in SHAPES}
    for r in range(args.rounds):
        for name, k, n, transposed in SHAPES:
            # About 2 s per side and shape per round, at least 5 calls.
            reps = max(5, min(15, int(2.0 / (2 * m * k * n / 350e9))))
            sides = [
                lambda: ours_median(args.bin, m, k, n, args.threads, reps),
                lambda: torch_median(m, k, n, transposed, reps),
            ]
            if r % 2:
                t_torch, t_ours = sides[1](), sides[0]()
            else:
                t_ours, t_torch = sides[0](), sides[1]()
            pairs[name].append((t_ours, t_torch))
        print(f"round {r + 1} done", flush=True)
    print()
    print(f"| shape | MxKxN | hooklens GFLOP/s | torch GFLOP/s | ratio (median of rounds) "
          f"| ratio range | rounds hooklens ahead |")
    print("|---|---|---|---|---|---|---|")
    for name, k, n, _ in SHAPES:
        flops = 2 * m * k * n
        ours = statistics.median(p[0] for p in pairs[name])
        theirs = statistics.median(p[1] for p in pairs[name])
        ratios = [t / o for o, t in pairs[name]]
        ahead = sum(rt >= 1.0 for rt in ratios)
        print(f"| {name} | {m}x{k}x{n} | {flops / ours / 1e9:.1f} | {flops / theirs / 1e9:.1f} "
              f"| {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} "
              f"| {ahead}/{len(ratios)} |")


if __name__ == "__main__":
    main()
