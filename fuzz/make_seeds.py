#!/usr/bin/env python3
"""Writes the fuzz seed corpus (fuzz/corpus/<target>/) from the test fixtures.

Seeds are kept small (a few KiB) so the fuzzer runs fast: the model seeds are the fixture
configs shrunk to 1 layer and a handful of dimensions, with the weights the architecture
needs; the GGUF seeds are the fixture GGUF files plus a tokenizer-only GGUF built from the
GPT-2 fixture vocabulary. Run from the repository root: python3 fuzz/make_seeds.py
"""
import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors):
    """tensors: {name: shape}; f32 values 0.01 * index."""
    header, blobs, offset = {}, [], 0
    for name, shape in tensors.items():
        n = 1
        for s in shape:
            n *= s
        blob = struct.pack(f"<{n}f", *[0.01 * (i % 17) for i in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def model_dir_seed(config, tensors):
    """The safetensors-dir target's input: u16 LE length of config.json, config.json, weights."""
    c = json.dumps(config).encode()
    return struct.pack("<H", len(c)) + c + safetensors(tensors)


def gpt2_seed():
    cfg = json.loads((FIX / "gpt2_tiny" / "config.json").read_text())
    d, v, p = 4, 8, 4
    cfg.update(n_embd=d, n_head=2, n_layer=1, n_positions=p, vocab_size=v, bos_token_id=0, eos_token_id=0)
    pre = "transformer.h.0."
    t = {
        "transformer.wte.weight": [v, d], "transformer.wpe.weight": [p, d],
        "transformer.ln_f.weight": [d], "transformer.ln_f.bias": [d],
        pre + "ln_1.weight": [d], pre + "ln_1.bias": [d], pre + "ln_2.weight": [d], pre + "ln_2.bias": [d],
        pre + "attn.c_attn.weight": [d, 3 * d], pre + "attn.c_attn.bias": [3 * d],
        pre + "attn.c_proj.weight": [d, d], pre + "attn.c_proj.bias": [d],
        pre + "mlp.c_fc.weight": [d, 4 * d], pre + "mlp.c_fc.bias": [4 * d],
        pre + "mlp.c_proj.weight": [4 * d, d], pre + "mlp.c_proj.bias": [d],
    }
    return model_dir_seed(cfg, t)


def llama_seed():
    cfg = json.loads((FIX / "llama_gqa" / "config.json").read_text())
    d, hd, nh, kv, m, v = 8, 4, 2, 1, 6, 8
    cfg.update(hidden_size=d, head_dim=hd, num_attention_heads=nh, num_key_value_heads=kv,
               intermediate_size=m, num_hidden_layers=1, max_position_embeddings=4, vocab_size=v)
    pre = "model.layers.0."
    t = {
        "model.embed_tokens.weight": [v, d], "lm_head.weight": [v, d], "model.norm.weight": [d],
        pre + "input_layernorm.weight": [d], pre + "post_attention_layernorm.weight": [d],
        pre + "self_attn.q_proj.weight": [nh * hd, d], pre + "self_attn.k_proj.weight": [kv * hd, d],
        pre + "self_attn.v_proj.weight": [kv * hd, d], pre + "self_attn.o_proj.weight": [d, nh * hd],
        pre + "mlp.gate_proj.weight": [m, d], pre + "mlp.up_proj.weight": [m, d],
        pre + "mlp.down_proj.weight": [d, m],
    }
    return model_dir_seed(cfg, t)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_tokenizer_seed():
    """A GGUF v3 file with no tensors and the `tokenizer.ggml.*` keys of a byte-level BPE."""
    vocab = json.loads((FIX / "vocab.json").read_text())
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])][:300]
    merges = [l for l in (FIX / "merges.txt").read_text().splitlines() if l and not l.startswith("#")]
    known = set(tokens)
    merges = [m for m in merges if "".join(m.split(" ")) in known][:40]
    kvs = []

    def kv_str(k, s):
        kvs.append(gguf_string(k) + struct.pack("<I", 8) + gguf_string(s))

    def kv_u32(k, v):
        kvs.append(gguf_string(k) + struct.pack("<II", 4, v))

    def kv_str_array(k, items):
        body = b"".join(gguf_string(s) for s in items)
        kvs.append(gguf_string(k) + struct.pack("<IIQ", 9, 8, len(items)) + body)

    def kv_i32_array(k, items):
        kvs.append(gguf_string(k) + struct.pack("<IIQ", 9, 5, len(items)) + struct.pack(f"<{len(items)}i", *items))

    kv_str("general.architecture", "llama")
    kv_str("tokenizer.ggml.model", "gpt2")
    kv_str("tokenizer.ggml.pre", "gpt2")
    kv_str_array("tokenizer.ggml.tokens", tokens)
    kv_i32_array("tokenizer.ggml.token_type", [3 if i == 0 else 1 for i in range(len(tokens))])
    kv_str_array("tokenizer.ggml.merges", merges)
    kv_u32("tokenizer.ggml.bos_token_id", 0)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)


def main():
    for f in ["synthetic.gguf", "synthetic_align64.gguf"]:
        write("gguf", "valid-" + f, (FIX / "gguf" / f).read_bytes())
    write("gguf", "valid-tokenizer.gguf", gguf_tokenizer_seed())
    write("gguf_tokenizer", "valid-tokenizer.gguf", gguf_tokenizer_seed())
    write("safetensors_dir", "valid-gpt2", gpt2_seed())
    write("safetensors_dir", "valid-llama", llama_seed())
    ivs = {
        "zero-head": {"hook": "blocks.0.attn.hook_z", "heads": [1], "positions": [0, 2], "op": {"kind": "zero"}},
        "scale": [{"hook": "resid_pre1", "op": {"kind": "scale", "factor": 0.5}}],
        "add": {"hook": "blocks.1.hook_resid_post", "positions": [1], "op": {"kind": "add", "vector": [0.1] * 48}},
        "set": {"hook": "z0", "op": {"kind": "set", "values": {"data": [0.0] * 192, "shape": [4, 6, 8]}}},
        "pattern": {"hook": "pattern1", "heads": [0], "op": {"kind": "scale", "factor": 2.0}},
    }
    for name, doc in ivs.items():
        write("intervention", "valid-" + name + ".json", json.dumps(doc))
    for i, text in enumerate(["1,2,3", " 4 , 5,", "0", "299,1,2,3,4,5,6,7"]):
        write("tokens", f"valid-{i}", text)
    write("tokens", "bad-x", "1,x")
    for i, text in enumerate(["blocks.0.attn.hook_z", "z0", "pattern1attn", "k1", "scale1ln2",
                              "ln_final.hook_scale", "blocks.1.mlp.hook_post", "hook_embed"]):
        write("selector", f"valid-{i}", text)


if __name__ == "__main__":
    main()
