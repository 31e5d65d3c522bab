#!/usr/bin/env python3
"""Time torch.matmul at the shapes of benches/gemm.rs and print GFLOP/s.

    /work/refvenv/bin/python scripts/bench/gemm_torch.py --threads 2 [--json out.json]

Shapes: M in {1, 16, 256, 2304} x the GPT-2 small and SmolLM2 (K, N) projections; the tied
unembeddings are timed as x @ W.T with W stored [N, K], as a model runs them. Each shape is
called until 0.6 s have passed (after a warm-up) in 10 samples; the median sample is reported,
like criterion's median.
"""

import argparse
import json
import statistics
import time

import torch

SHAPES = [
    ("gpt2 attn out", 768, 768, False),
    ("gpt2 qkv", 768, 2304, False),
    ("gpt2 mlp up", 768, 3072, False),
    ("gpt2 mlp down", 3072, 768, False),
    ("gpt2 unembed", 768, 50257, True),
    ("smollm2 q/o", 576, 576, False),
    ("smollm2 k/v", 576, 192, False),
    ("smollm2 mlp up", 576, 1536, False),
    ("smollm2 mlp down", 1536, 576, False),
    ("smollm2 unembed", 576, 49152, True),
]
MS = [1, 16, 256, 2304]


def time_call(fn, budget_s=0.6, samples=10):
    fn()  # warm-up (and first-call allocation)
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    iters = max(1, int(budget_s / samples / once))
    per_call = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        per_call.append((time.perf_counter() - t0) / iters)
    return statistics.median(per_call)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--json", help="write {'MxKxN': seconds} here")
    ap.add_argument("--quick", action="store_true", help="M in {1, 256} only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    results = {}
    with torch.inference_mode():
        for name, k, n, transposed in SHAPES:
            w = torch.rand(n, k) - 0.5 if transposed else torch.rand(k, n) - 0.5
            for m in [1, 256] if args.quick else MS:
                x = torch.rand(m, k) - 0.5
                out = torch.empty(m, n)
                if transposed:
                    fn = lambda: torch.matmul(x, w.t(), out=out)  # noqa: E731
                else:
                    fn = lambda: torch.matmul(x, w, out=out)  # noqa: E731
                s = time_call(fn)
                key = f"{m}x{k}x{n}"
                results[key] = s
                print(f"{name:18} {key:>14}: {s * 1e6:10.1f} us {2 * m * k * n / s / 1e9:8.1f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "torch": torch.__version__, "seconds": results}, f, indent=1)


if __name__ == "__main__":
    main()
