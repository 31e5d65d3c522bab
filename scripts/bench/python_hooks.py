#!/usr/bin/env python3
"""Cost of a Python hook per slot and call, through the hooklens package.

Runs a pass with a no-op hook at every default slot, then with two at every slot, in
interleaved rounds, and prints the per-slot difference (the calls alone: both runs take the
unfused kernels, every slot being watched). A benchmark, not a test: the figure depends on
the machine and its load.

    python scripts/bench/python_hooks.py [--model PATH] [--prompt TEXT] [--rounds N]
"""

import argparse
import statistics
import time

import hooklens


def best_of(call, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt", default="The Eiffel Tower is in the city of")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()

    model = hooklens.HookedTransformer.load(args.model, device="cpu")
    toks = model.to_tokens(args.prompt)
    names = list(model.run_with_cache(toks)[1].keys())
    once = [(name, lambda x, hook: None) for name in names]
    per_slot, plain_ms, once_ms = [], [], []
    for _ in range(args.rounds):
        plain = best_of(lambda: model(toks, return_type=None), args.reps)
        one = best_of(lambda: model.run_with_hooks(toks, fwd_hooks=once, return_type=None), args.reps)
        two = best_of(lambda: model.run_with_hooks(toks, fwd_hooks=once + once, return_type=None), args.reps)
        per_slot.append((two - one) / len(names))
        plain_ms.append(plain * 1e3)
        once_ms.append(one * 1e3)
    print(
        f"Python hook: {statistics.median(per_slot) * 1e6:.1f} us per slot and call "
        f"(median of {args.rounds} rounds, {len(names)} slots, {toks.shape[1]} tokens); "
        f"pass {statistics.median(plain_ms):.2f} ms plain, "
        f"{statistics.median(once_ms):.2f} ms with a no-op hook at every slot"
    )


if __name__ == "__main__":
    main()
