"""The GIL is released while the engine runs without Python hooks; the cost of a Python hook
per slot, measured."""

import threading
import time

import numpy as np

from conftest import Reference, load_fixture


def count_python_steps_during(call):
    """How many Python loop steps the main thread makes while `call` runs in another thread."""
    started, done = threading.Event(), threading.Event()
    result = {}

    def worker():
        started.set()
        result["out"] = call()
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    steps = 0
    while not done.is_set():
        steps += 1
    t.join()
    return steps, result["out"]


def test_plain_passes_and_sweeps_release_the_gil(smollm2):
    toks = smollm2.to_tokens("The Eiffel Tower is in the city of " * 6)
    # The pass takes tens of milliseconds; holding the GIL, the loop would get a handful of
    # steps (before the call starts), releasing it, hundreds of thousands.
    steps, logits = count_python_steps_during(lambda: smollm2(toks))
    assert logits.shape[1] == toks.shape[1] and steps > 10_000
    steps, _ = count_python_steps_during(lambda: smollm2.run_with_cache(toks, names_filter=["hook_embed"]))
    assert steps > 10_000
    short = smollm2.to_tokens("The Eiffel Tower is in")
    steps, _ = count_python_steps_during(lambda: smollm2.patch(short, short, target=" Paris", site="resid_pre"))
    assert steps > 1_000


def test_python_hook_cost_per_slot():
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    default = model.run_with_cache(toks)[1].keys()
    n = len(default)
    assert n == 4 + 17 * model.cfg.n_layers
    hooks = [(name, lambda x, h: None) for name in default]

    def best_of(f, reps=20):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return min(times)

    # One more hook at every slot: the difference is the calls alone (the kernels are the
    # unfused ones in both runs, every slot being watched).
    once = best_of(lambda: model.run_with_hooks(toks, fwd_hooks=hooks, return_type=None))
    twice = best_of(lambda: model.run_with_hooks(toks, fwd_hooks=hooks + hooks, return_type=None))
    plain = best_of(lambda: model(toks, return_type=None))
    per_hook = (twice - once) / n
    print(
        f"\nPython hook cost: {per_hook * 1e6:.1f} us per slot and call ({n} slots; "
        f"pass {plain * 1e3:.2f} ms plain, {once * 1e3:.2f} ms with a no-op hook at every slot)"
    )
    assert 0 < per_hook < 200e-6


def test_threads_share_one_model():
    from concurrent.futures import ThreadPoolExecutor

    from conftest import TOL, max_diff

    model = load_fixture("gpt2_small4")
    ref = Reference("gpt2_small4")
    layer, head = int(ref.meta["zero_head_layer"]), int(ref.meta["zero_head_head"])

    def zero(z, h):
        z[:, :, head, :] = 0.0

    def job(i):
        if i % 2:
            return model(ref.tokens), ref.tensors["logits"]
        return model.run_with_hooks(ref.tokens, fwd_hooks=[(("z", layer), zero)]), ref.tensors["zero_head_logits"]

    with ThreadPoolExecutor(4) as pool:
        for got, want in pool.map(job, range(16)):
            assert max_diff(got, want) <= TOL
