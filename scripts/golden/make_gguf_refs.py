#!/usr/bin/env python3
"""Reference data for hooklens' GGUF support, from independent sources.

Writes, under tests/fixtures/gguf/:
  synthetic.gguf          small GGUF v3 file written by `gguf.GGUFWriter`: one tensor of every
                          supported ggml type at awkward shapes, plus metadata of every value type
  synthetic_align64.gguf  the same tensors with general.alignment = 64
  synthetic.json          expected metadata and, per tensor, the f32 values that
                          `gguf.quants.dequantize` gives
  smollm2_refs.json       (needs the SmolLM2 file) metadata, dequantised slices and whole-tensor
                          sums of SmolLM2-135M-Instruct.Q4_1.gguf, by `gguf` + numpy
  smollm2_tokenizer.json  (needs the SmolLM2 file) token ids from HF transformers'
                          AutoTokenizer.from_pretrained(dir, gguf_file=...) for varied texts

Run with the reference venv:  /work/refvenv/bin/python scripts/golden/make_gguf_refs.py
The SmolLM2 file is looked up as $HOOKLENS_HOME/SmolLM2-135M-Instruct.Q4_1.gguf
($HOOKLENS_HOME defaults to ~/.cache/hooklens).
"""

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def f32_list(a):
    """Exact JSON floats: an f32 widened to f64 prints (repr) without loss."""
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


# ---------------------------------------------------------------------------------------------
# (a) synthetic files
# ---------------------------------------------------------------------------------------------

def random_k_blocks(rng, qtype, n_blocks):
    """Valid random Q4_K / Q6_K blocks: random bytes with finite, moderate f16 scales.

    The gguf package can dequantise but not quantise k-quants, and SmolLM2 has none."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def f16_bytes(values):
        return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(n_blocks, 2)

    if qtype == Q.Q4_K:
        raw[:, 0:2] = f16_bytes(rng.uniform(0.001, 0.05, n_blocks))  # d
        raw[:, 2:4] = f16_bytes(rng.uniform(0.001, 0.05, n_blocks))  # dmin
    elif qtype == Q.Q6_K:
        raw[:, 208:210] = f16_bytes(rng.uniform(-0.01, 0.01, n_blocks))  # d
    else:
        raise ValueError(qtype)
    return raw


def make_tensor(rng, qtype, shape):
    """(bytes to store, expected f32 from gguf.quants.dequantize, how the bytes were made)."""
    data = rng.standard_normal(shape).astype(np.float32) * 2.0 + 0.25
    data[data == 0] = 0.5
    if qtype == Q.F32:
        return data, data.copy(), "random f32"
    if qtype == Q.F16:
        stored = data.astype(np.float16)
        return stored, stored.astype(np.float32), "random f32 rounded to f16"
    if qtype in (Q.Q4_K, Q.Q6_K):
        block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
        rows = int(np.prod(shape[:-1]))
        n_blocks = rows * shape[-1] // block_size
        raw = random_k_blocks(rng, qtype, n_blocks).reshape(rows, -1)
        raw = raw.reshape(*shape[:-1], -1)
        how = "random valid block bytes (gguf cannot quantise k-quants)"
    else:
        raw = gguf.quants.quantize(data, qtype)
        how = "gguf.quants.quantize of random f32"
    expected = gguf.quants.dequantize(raw, qtype)
    assert expected.shape == tuple(shape), (qtype, expected.shape, shape)
    if qtype not in (Q.Q4_K, Q.Q6_K):
        # Sanity: the quantisation is close to the data it came from.
        assert np.max(np.abs(expected - data)) < 2.0, qtype
    assert np.all(expected != 0) or qtype in (Q.Q4_K, Q.Q6_K, Q.Q4_0, Q.Q8_0), qtype
    return raw, expected.astype(np.float32), how


SYNTHETIC_TENSORS = [
    # name, type, numpy (row-major) shape
    ("t.f32", Q.F32, (3, 7)),
    ("t.f32_4d", Q.F32, (2, 1, 3, 5)),
    ("t.f16", Q.F16, (5, 3, 2)),
    ("t.bf16", Q.BF16, (2, 9)),
    ("t.q8_0", Q.Q8_0, (3, 96)),
    ("t.q8_0_1row", Q.Q8_0, (32,)),
    ("t.q4_0", Q.Q4_0, (5, 64)),
    ("t.q4_1", Q.Q4_1, (3, 160)),
    ("t.q4_1_3d", Q.Q4_1, (2, 3, 32)),
    ("t.q4_k", Q.Q4_K, (3, 512)),
    ("t.q4_k_1", Q.Q4_K, (1, 256)),
    ("t.q6_k", Q.Q6_K, (2, 768)),
    ("t.q6_k_1", Q.Q6_K, (256,)),
]

# key, GGUF value type name, value, writer call
SYNTHETIC_METADATA = [
    ("test.u8", "u8", 200, lambda w, k, v: w.add_uint8(k, v)),
    ("test.i8", "i8", -100, lambda w, k, v: w.add_int8(k, v)),
    ("test.u16", "u16", 60000, lambda w, k, v: w.add_uint16(k, v)),
    ("test.i16", "i16", -30000, lambda w, k, v: w.add_int16(k, v)),
    ("test.u32", "u32", 4000000000, lambda w, k, v: w.add_uint32(k, v)),
    ("test.i32", "i32", -2000000000, lambda w, k, v: w.add_int32(k, v)),
    ("test.f32", "f32", 1.5, lambda w, k, v: w.add_float32(k, v)),
    ("test.bool_true", "bool", True, lambda w, k, v: w.add_bool(k, v)),
    ("test.bool_false", "bool", False, lambda w, k, v: w.add_bool(k, v)),
    ("test.string", "string", "héllo wörld ✓ 日本", lambda w, k, v: w.add_string(k, v)),
    ("test.u64", "u64", 18000000000000000000, lambda w, k, v: w.add_uint64(k, v)),
    ("test.i64", "i64", -9000000000000000000, lambda w, k, v: w.add_int64(k, v)),
    ("test.f64", "f64", 3.141592653589793, lambda w, k, v: w.add_float64(k, v)),
    ("test.arr_u8", "array of u8", [1, 2, 255],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT8)),
    ("test.arr_i16", "array of i16", [-1, 2, -300],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT16)),
    ("test.arr_i32", "array of i32", [1, -2, 3, -4],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)),
    ("test.arr_u64", "array of u64", [1, 2**40],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT64)),
    ("test.arr_f32", "array of f32", [0.5, -2.25, 1e-05],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT32)),
    ("test.arr_f64", "array of f64", [0.1, -1e300],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT64)),
    ("test.arr_bool", "array of bool", [True, False, True],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.BOOL)),
    ("test.arr_str", "array of string", ["a", "", "ünï ✓", "with space"],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)),
    ("test.arr_nested", "array of array", [[1, 2], [3], [4, 5, 6]],
     lambda w, k, v: w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.ARRAY)),
]


def write_synthetic(path, alignment=None, seed=1234):
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "testarch")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    for key, _ty, value, add in SYNTHETIC_METADATA:
        add(writer, key, value)
    tensors = []
    for name, qtype, shape in SYNTHETIC_TENSORS:
        raw, expected, how = make_tensor(rng, qtype, shape)
        writer.add_tensor(name, raw, raw_dtype=None if qtype in (Q.F32, Q.F16) else qtype)
        tensors.append({
            "name": name,
            "type": qtype.name,
            "shape": list(shape),
            "dims": list(reversed(shape)),
            "made_by": how,
            "expected": f32_list(expected),
        })
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # Cross-check with the package's own reader: same dequantised values.
    reader = gguf.GGUFReader(str(path))
    by_name = {t.name: t for t in reader.tensors}
    for t in tensors:
        rt = by_name[t["name"]]
        got = gguf.quants.dequantize(rt.data, rt.tensor_type).astype(np.float32).ravel()
        assert np.array_equal(got, np.asarray(t["expected"], dtype=np.float32)), t["name"]
    return tensors, reader


def metadata_json():
    out = []
    for key, ty, value, _add in SYNTHETIC_METADATA:
        out.append({"key": key, "type": ty, "value": value})
    out.append({"key": "general.architecture", "type": "string", "value": "testarch"})
    return out


def make_synthetic():
    tensors, reader = write_synthetic(OUT / "synthetic.gguf")
    tensors64, reader64 = write_synthetic(OUT / "synthetic_align64.gguf", alignment=64)
    assert [t["expected"] for t in tensors] == [t["expected"] for t in tensors64]
    doc = {
        "source": "gguf Python package " + importlib.metadata.version("gguf")
                  + " (GGUFWriter, quants.quantize / quants.dequantize)",
        "files": {
            "synthetic.gguf": {"version": 3, "alignment": 32,
                               "data_start": int(reader.data_offset)},
            "synthetic_align64.gguf": {"version": 3, "alignment": 64,
                                       "data_start": int(reader64.data_offset)},
        },
        "metadata": metadata_json(),
        "tensors": tensors,
    }
    (OUT / "synthetic.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    print(f"synthetic: {len(tensors)} tensors, {(OUT / 'synthetic.gguf').stat().st_size} bytes")


# ---------------------------------------------------------------------------------------------
# (b) SmolLM2 dequantised slices
# ---------------------------------------------------------------------------------------------

SLICES = [
    # tensor, first row, end row (rows of the row-major 2D view; 1D tensors: whole)
    ("token_embd.weight", 0, 3),
    ("token_embd.weight", 1000, 1001),
    ("token_embd.weight", 49150, 49152),
    ("blk.0.attn_q.weight", 0, 2),
    ("blk.0.attn_k.weight", 190, 192),
    ("blk.13.ffn_gate.weight", 1535, 1536),
    ("blk.29.ffn_down.weight", 0, 1),
    ("blk.29.attn_output.weight", 575, 576),
    ("blk.0.attn_norm.weight", None, None),
    ("output_norm.weight", None, None),
]
SUM_TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight",
               "blk.29.ffn_down.weight", "blk.0.ffn_norm.weight", "output_norm.weight"]


def field_value(reader, key):
    f = reader.fields[key]
    t = f.types
    if t[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if t[0] == gguf.GGUFValueType.ARRAY:
        return None
    return f.parts[f.data[0]].tolist()[0]


def make_smollm2_refs(model):
    reader = gguf.GGUFReader(str(model))
    tensors = {t.name: t for t in reader.tensors}
    deq = {}

    def full(name):
        if name not in deq:
            t = tensors[name]
            deq[name] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        return deq[name]

    slices = []
    for name, start, end in SLICES:
        a = full(name)
        t = tensors[name]
        if start is None:
            vals = a.ravel()
        else:
            vals = a.reshape(a.shape[0], -1)[start:end].ravel()
        slices.append({"tensor": name, "type": t.tensor_type.name,
                       "shape": list(a.shape), "rows": [start, end], "values": f32_list(vals)})
    sums = []
    for name in SUM_TENSORS:
        a = full(name).astype(np.float64)
        sums.append({"tensor": name, "type": tensors[name].tensor_type.name,
                     "shape": list(full(name).shape), "sum": float(a.sum()),
                     "abs_sum": float(np.abs(a).sum()), "sq_sum": float((a * a).sum())})
    from collections import Counter
    type_counts = Counter(t.tensor_type.name for t in reader.tensors)
    keys = ["general.architecture", "llama.block_count", "llama.embedding_length",
            "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.feed_forward_length", "llama.rope.freq_base",
            "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size",
            "llama.context_length", "llama.rope.dimension_count", "tokenizer.ggml.model",
            "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.add_bos_token", "general.alignment"]
    metadata = {k: field_value(reader, k) for k in keys if k in reader.fields}
    doc = {
        "source": "gguf Python package GGUFReader + quants.dequantize on " + MODEL_NAME,
        "file_size": model.stat().st_size,
        "version": int(reader.fields["GGUF.version"].parts[-1][0]),
        "data_start": int(reader.data_offset),
        "tensor_count": len(reader.tensors),
        "tensor_type_counts": dict(type_counts),
        "n_merges": len(reader.fields["tokenizer.ggml.merges"].data),
        "n_tokens": len(reader.fields["tokenizer.ggml.tokens"].data),
        "metadata": metadata,
        "slices": slices,
        "sums": sums,
    }
    (OUT / "smollm2_refs.json").write_text(json.dumps(doc, indent=1))
    print(f"smollm2 refs: {len(slices)} slices, {len(sums)} sums, types {dict(type_counts)}")


# ---------------------------------------------------------------------------------------------
# (c) tokenizer cases from HF transformers
# ---------------------------------------------------------------------------------------------

TEXTS = [
    "",
    " ",
    "Hello world",
    "Hello, world! How are you today?",
    "The capital of France is Paris.",
    "  leading and trailing spaces  ",
    "multiple     spaces   between",
    "tabs\tand\t\ttabs",
    "new\nlines\n\nand\r\nCRLF\n",
    "\n\n\n",
    "   \n\t  mixed whitespace run \t\n ",
    "1234567",
    "3.14 and 2.71828 and -42 and +7",
    "1,000,000 dollars; $100.50; 50% off; 0x1F; 1e-5; 2024-01-01T12:34:56Z",
    " 123 456 7890 ",
    "a1b2c3 v2.0.1 abc123def",
    "don't I'm they'll we've she's it'd you're DON'T I'M",
    "café naïve résumé façade jalapeño Ångström",
    "e\u0301 (combining acute) vs é",
    "ﬁ ligature, ＡＢＣ fullwidth, ½ fraction, ² superscript",
    "日本語のテキストです。中文文本。",
    "한국어 텍스트",
    "Привет, мир! Здравствуйте.",
    "Γειά σου κόσμε αβγ ΑΒΓ",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "emoji 😀🎉🚀 and 👨‍👩‍👧‍👦 family and 🇫🇷 flag",
    "math: ∑ ∫ √ ∞ ≤ ≥ ≠ π ≈ 3.14159",
    "zero\u200bwidth\u200bspace and\u00a0nbsp",
    "control \u0001\u0007 chars and DEL \u007f",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "<div class=\"x\"><p>Hello &amp; bye</p></div>",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
    "user@example.com #hashtag @mention C++ C# F# .NET",
    "!!!???...,,,;;;:::---___***",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "HeLLo WoRLD ThIs Is MiXeD CaSe",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "<|endoftext|>",
    "text before<|endoftext|>text after",
    "abc<|im_end|>def",
    " <|im_start|> spaced <|im_end|> ",
    "<|im_start|><|im_start|><|im_end|>",
    "<|im_start",
    "<|im_start|",
    "im_start|>",
    "<repo_name>hooklens<file_sep>src/main.rs<filename>x.py<gh_stars>10",
    "<jupyter_code>print(1)<jupyter_output>1<empty_output>",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Transformers are a type of neural network architecture. Interpretability research "
    "studies the internal mechanisms of such models, for example by patching activations, "
    "ablating attention heads, and tracing causal effects through the residual stream.",
]


def make_tokenizer_cases(model):
    from transformers import AutoTokenizer, __version__ as tf_version

    tok = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
    cases = []
    for text in TEXTS:
        ids = tok.encode(text)  # add_special_tokens=True, as users call it
        assert ids[0] == 1, f"HF did not prepend id 1 for {text!r}: {ids[:3]}"
        body = ids[1:]
        plain = tok.encode(text, add_special_tokens=False)
        assert plain == body, text
        cases.append({
            "text": text,
            "ids": body,
            "tokens": tok.convert_ids_to_tokens(body),
            # Raw decode: HF's default clean_up_tokenization_spaces=True (set by its GGUF
            # loader) is a lossy Python-side rewrite (" ." -> ".") hooklens does not copy.
            "decoded": tok.decode(body, skip_special_tokens=False,
                                  clean_up_tokenization_spaces=False),
        })
    backend = tok.backend_tokenizer
    doc = {
        "source": f"transformers {tf_version} AutoTokenizer.from_pretrained(dir, gguf_file="
                  f"'{model.name}'), ids of tok.encode(text) with the leading id dropped",
        "hf_class": type(tok).__name__,
        "hf_prepends_id": 1,
        "hf_prepended_token": tok.convert_ids_to_tokens(1),
        "hf_add_bos_token": bool(tok.add_bos_token),
        "hf_bos_token": tok.bos_token,
        "hf_eos_token": tok.eos_token,
        "hf_normalizer": str(backend.normalizer),
        "hf_pre_tokenizer": str(backend.pre_tokenizer),
        "cases": cases,
    }
    (OUT / "smollm2_tokenizer.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    print(f"tokenizer: {len(cases)} cases; HF ({type(tok).__name__}) prepends "
          f"{tok.convert_ids_to_tokens(1)!r}, bos={tok.bos_token!r} eos={tok.eos_token!r}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    make_synthetic()
    home = Path(os.environ.get("HOOKLENS_HOME", Path.home() / ".cache" / "hooklens"))
    model = home / MODEL_NAME
    if not model.exists():
        print(f"{model} not found: skipping the SmolLM2 references", file=sys.stderr)
        return 1
    make_smollm2_refs(model)
    make_tokenizer_cases(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
