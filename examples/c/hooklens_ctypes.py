#!/usr/bin/env python3
"""hooklens from Python through ctypes and numpy: the C example (hooklens_demo.c) again, with
numpy views of the engine's buffers instead of copies.

    python3 examples/c/hooklens_ctypes.py [MODEL] [PROMPT]

The library is $HOOKLENS_LIB, else target/release/libhooklens.so of this repository. The
output has the C example's "key values..." lines (tests/c_examples.rs compares the two).
"""
import ctypes as C
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get("HOOKLENS_LIB") or os.path.join(HERE, "..", "..", "target", "release", "libhooklens.so")
hl = C.CDLL(LIB)

F32P = C.POINTER(C.c_float)
I64P = C.POINTER(C.c_int64)
HOOK_FN = C.CFUNCTYPE(C.c_int, C.c_char_p, F32P, I64P, C.c_int, C.c_void_p)
OK, BUFFER_TOO_SMALL = 0, 3

hl.hl_last_error.restype = C.c_char_p
hl.hl_version.restype = C.c_char_p
hl.hl_model_load.argtypes = [C.c_char_p, C.c_char_p, C.POINTER(C.c_void_p)]
hl.hl_model_free.argtypes = [C.c_void_p]
hl.hl_model_dims.argtypes = [C.c_void_p] + [I64P] * 4
hl.hl_tokenize.argtypes = [C.c_void_p, C.c_char_p, C.c_int, C.POINTER(C.c_uint32), C.c_size_t,
                           C.POINTER(C.c_size_t)]
RUN = [C.c_void_p, C.POINTER(C.c_uint32), C.c_size_t, C.c_size_t]
hl.hl_run_logits.argtypes = RUN + [F32P, C.c_size_t]
hl.hl_run_with_hook.argtypes = RUN + [C.c_char_p, HOOK_FN, C.c_void_p, F32P, C.c_size_t]
hl.hl_run_with_cache.argtypes = RUN + [C.c_char_p, C.POINTER(C.c_void_p)]
hl.hl_cache_get.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(F32P), C.POINTER(I64P),
                            C.POINTER(C.c_int)]
hl.hl_cache_free.argtypes = [C.c_void_p]
hl.hl_sweep_json.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_void_p)]
hl.hl_string_free.argtypes = [C.c_void_p]


def check(status):
    if status != OK:
        raise RuntimeError(f"hooklens error {status}: {hl.hl_last_error().decode()}")


def floats(key, values):
    print(key, " ".join(f"{v:.9g}" for v in values))


def main():
    path = sys.argv[1].encode() if len(sys.argv) > 1 else None
    prompt = (sys.argv[2] if len(sys.argv) > 2 else "The Eiffel Tower is in the city of").encode()
    print("version", hl.hl_version().decode())
    model = C.c_void_p()
    check(hl.hl_model_load(path, b"cpu", C.byref(model)))
    dims = [C.c_int64() for _ in range(4)]
    check(hl.hl_model_dims(model, *[C.byref(d) for d in dims]))
    n_layers, n_heads, d_model, d_vocab = (d.value for d in dims)
    print("dims", n_layers, n_heads, d_model, d_vocab)

    n = C.c_size_t()
    assert hl.hl_tokenize(model, prompt, 1, None, 0, C.byref(n)) == BUFFER_TOO_SMALL
    tokens = np.empty(n.value, dtype=np.uint32)
    ids = tokens.ctypes.data_as(C.POINTER(C.c_uint32))
    check(hl.hl_tokenize(model, prompt, 1, ids, tokens.size, C.byref(n)))
    print("tokens", " ".join(str(t) for t in tokens))
    seq = tokens.size

    clean = np.empty((1, seq, d_vocab), dtype=np.float32)  # [batch, seq, d_vocab], filled in place
    check(hl.hl_run_logits(model, ids, 1, seq, clean.ctypes.data_as(F32P), clean.size))

    calls = []

    @HOOK_FN
    def zero_head(name, data, shape, ndim, user):
        z = np.ctypeslib.as_array(data, shape=tuple(shape[i] for i in range(ndim)))  # a view
        z[:, :, 1, :] = 0.0  # head 1 of [batch, pos, n_heads, d_head], in the engine's buffer
        calls.append(name.decode())
        return 0

    ablated = np.empty_like(clean)
    check(hl.hl_run_with_hook(model, ids, 1, seq, b"blocks.0.attn.hook_z", zero_head, None,
                              ablated.ctypes.data_as(F32P), ablated.size))
    print("hook_calls", len(calls))
    floats("clean_last", clean[0, -1])
    floats("ablated_last", ablated[0, -1])

    cache = C.c_void_p()
    check(hl.hl_run_with_cache(model, ids, 1, seq, b"hook_pattern", C.byref(cache)))
    data, shape, ndim = F32P(), I64P(), C.c_int()
    check(hl.hl_cache_get(cache, b"blocks.0.attn.hook_pattern", C.byref(data), C.byref(shape),
                          C.byref(ndim)))
    dims = tuple(shape[i] for i in range(ndim.value))
    pattern = np.ctypeslib.as_array(data, shape=dims)  # a view of the cache's own buffer
    pattern.flags.writeable = False
    print("pattern_shape", " ".join(str(d) for d in dims))
    floats("pattern", pattern.ravel())
    del pattern  # the view must not outlive the cache
    hl.hl_cache_free(cache)

    request = {"kind": "ablate", "tokens": tokens.tolist(), "method": "zero", "metric": "logprob"}
    response = C.c_void_p()
    check(hl.hl_sweep_json(model, json.dumps(request).encode(), C.byref(response)))
    print("sweep", C.string_at(response).decode())
    hl.hl_string_free(response)
    hl.hl_model_free(model)


if __name__ == "__main__":
    main()
