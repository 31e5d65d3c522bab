"""The GIL is released while the engine runs without Python hooks; hooks at every slot are called."""

import threading


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


def test_a_hook_at_every_slot_is_called_once_per_registration():
    """Every default slot calls each of its hooks once per pass, in registration order; the
    timing of those calls is a benchmark (scripts/bench/python_hooks.py), not a test."""
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    default = list(model.run_with_cache(toks)[1].keys())
    n = len(default)
    assert n == 4 + 17 * model.cfg.n_layers
    calls = []

    def recorder(tag):
        return lambda x, hook: calls.append((hook.name, tag))

    hooks = [(name, recorder("first")) for name in default]
    hooks += [(name, recorder("second")) for name in default]
    model.run_with_hooks(toks, fwd_hooks=hooks, return_type=None)
    assert len(calls) == 2 * n
    assert sorted({name for name, _ in calls}) == sorted(default)
    for name in default:
        assert [tag for got, tag in calls if got == name] == ["first", "second"]


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
