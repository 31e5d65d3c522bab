"""The python_zero_head case of `hooklens bench`, run by it in a separate process.

argv[1] is a JSON object: model, threads, tokens ([batch][pos] ids), layer, head, reps.
Prints one JSON line: the timed seconds of each run after one warm-up, and versions.
"""

import json
import sys
import time

import numpy as np

import hooklens


def main():
    args = json.loads(sys.argv[1])
    hooklens.set_num_threads(args["threads"])
    model = hooklens.HookedTransformer.load(args["model"], device="cpu")
    tokens = np.array(args["tokens"], dtype=np.int64)
    head = args["head"]

    def zero_head(z, hook):
        z[:, :, head, :] = 0.0

    hooks = [(f"blocks.{args['layer']}.attn.hook_z", zero_head)]
    times = []
    for rep in range(args["reps"] + 1):
        start = time.perf_counter()
        model.run_with_hooks(tokens, fwd_hooks=hooks)
        if rep > 0:
            times.append(time.perf_counter() - start)
    print(json.dumps({"times_s": times, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
