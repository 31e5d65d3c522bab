#!/usr/bin/env python3
"""Writes tests/fixtures/llama_gqa/model.gguf: the llama_gqa random-weight checkpoint converted
to GGUF the way llama.cpp's converter does it (llama.* metadata, blk.N.* names, attn_q/attn_k
rows permuted for adjacent-pair rotary), in F32 so the TL references of llama_gqa apply
unchanged. No tokenizer metadata: the model is driven by token ids.

Run after make_fixtures.py: /path/to/venv/bin/python scripts/golden/make_llama_gguf.py
"""
import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests/fixtures/llama_gqa"


def permute(w, n_head):
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute: rows of each head regrouped from
    # HF's half-rotation order into adjacent pairs.
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


def main():
    cfg = json.loads((SRC / "config.json").read_text())
    sd = load_file(str(SRC / "model.safetensors"))
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(str(SRC / "model.gguf"), "llama")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_rope_dimension_count(cfg["hidden_size"] // n_head)
    w.add_vocab_size(cfg["vocab_size"])
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for key in sorted(sd):
        t = sd[key].astype(np.float32)
        if key in names:
            name = names[key]
        else:
            _, _, layer, *rest = key.split(".")
            suffix = ".".join(rest)
            name = f"blk.{layer}.{per_layer[suffix]}"
            if suffix == "self_attn.q_proj.weight":
                t = permute(t, n_head)
            elif suffix == "self_attn.k_proj.weight":
                t = permute(t, n_kv)
        w.add_tensor(name, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", SRC / "model.gguf")


if __name__ == "__main__":
    main()
