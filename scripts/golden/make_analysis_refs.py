#!/usr/bin/env python3
"""TransformerLens references for hooklens' weight accessors and cache analysis (issue 17).

For each random-weight checkpoint (gpt2_tiny, gpt2_small4, llama_gqa, llama_odd) and the tokens
of its `reference.safetensors`, writes tests/fixtures/analysis/<name>.safetensors (float32, plus `tokens` int64):

Unprocessed TL model (as make_fixtures.py builds it, no weight processing), whole batch:
- `w.<NAME>`: `model.<NAME>` for W_E, W_pos (GPT-2), W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O,
  W_in, W_gate (Llama), W_out, b_in, b_out, W_U, b_U; `w.blocks.{l}.attn._W_K` / `_W_V` (GQA,
  per key/value head);
- `acc_resid` = `cache.accumulated_resid(incl_mid=True)` (labels in metadata `acc_labels`);
- `decomp` = `cache.decompose_resid()` (labels in `decomp_labels`);
- `heads` = `cache.stack_head_results(-1)` (labels `head_labels`);
- `acc_resid_ln_last` = `cache.accumulated_resid(incl_mid=True, apply_ln=True, pos_slice=-1)`
  (TL 2.x applies the whole final norm to each component, with its own statistics);
- `decomp_ln_last` = `cache.decompose_resid(apply_ln=True, pos_slice=-1)` (the cached final
  scale) multiplied by `ln_final.w` (TL's apply_ln_to_stack leaves the weight out; hooklens
  folds it in);

TL-processed model (fold_ln, center_writing_weights, center_unembed, fold_value_biases), batch
row 0, targets `target` / `against` (the processed model's top two predictions at the last
position):
- `p.heads_attr`: `cache.logit_attrs(cache.stack_head_results(-1, pos_slice=-1),
  tokens=target, incorrect_tokens=against, pos_slice=-1)`, `[L*H, 1]` (logit_attrs applies the
  cached final-norm scale itself, so the stack goes in without `apply_ln`; with it the scale
  would be applied twice and the attributions would not sum to the logit difference);
- `p.embed_attr`, `p.pos_embed_attr` (GPT-2), `p.attn_bias_attr` `[L]`, `p.mlp_attr` `[L]`: the
  same for `hook_embed`, `hook_pos_embed`, each layer's `b_O` and `hook_mlp_out`;
- `p.logit_diff`: the processed model's logit difference; `p.const`: its part that no
  component carries (`b_U[target] - b_U[against]`, after folding the final norm's bias).

Run: /work/refvenv/bin/python scripts/golden/make_analysis_refs.py
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer
from transformers import GPT2LMHeadModel, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (  # noqa: E402
    convert_gpt2_weights,
    convert_llama_weights,
    gpt2_tl_cfg,
    llama_tl_cfg,
    load_tl,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"
NAMES = ["W_E", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_in", "W_out", "b_in",
         "b_out", "W_U", "b_U"]


def load(name):
    d = FIX / name
    if name.startswith("gpt2"):
        hf = GPT2LMHeadModel.from_pretrained(str(d), torch_dtype=torch.float32)
        cfg = gpt2_tl_cfg(hf.config)
        sd = convert_gpt2_weights(hf, cfg)
    else:
        hf = LlamaForCausalLM.from_pretrained(str(d), torch_dtype=torch.float32)
        cfg = llama_tl_cfg(hf.config)
        sd = convert_llama_weights(hf, cfg)
    return cfg, sd


def processed(cfg, sd):
    m = HookedTransformer(cfg)
    m.load_and_process_state_dict({k: v.clone() for k, v in sd.items()}, fold_ln=True,
                                  center_writing_weights=True, center_unembed=True,
                                  fold_value_biases=True, refactor_factored_attn_matrices=False)
    return m.eval()


def unprocessed_refs(m, tokens, out, meta):
    names = NAMES + (["W_pos"] if m.cfg.positional_embedding_type == "standard" else ["W_gate"])
    for n in names:
        out[f"w.{n}"] = getattr(m, n).detach()
    if m.cfg.n_key_value_heads is not None:
        for l, b in enumerate(m.blocks):
            out[f"w.blocks.{l}.attn._W_K"] = b.attn._W_K.detach()
            out[f"w.blocks.{l}.attn._W_V"] = b.attn._W_V.detach()
    _, cache = m.run_with_cache(tokens)
    acc, labels = cache.accumulated_resid(incl_mid=True, return_labels=True)
    out["acc_resid"], meta["acc_labels"] = acc, json.dumps(labels)
    dec, labels = cache.decompose_resid(return_labels=True)
    out["decomp"], meta["decomp_labels"] = dec, json.dumps(labels)
    heads, labels = cache.stack_head_results(-1, return_labels=True)
    out["heads"], meta["head_labels"] = heads, json.dumps(labels)
    ln = cache.accumulated_resid(incl_mid=True, apply_ln=True, pos_slice=-1)
    out["acc_resid_ln_last"] = ln
    dec = cache.decompose_resid(apply_ln=True, pos_slice=-1)
    out["decomp_ln_last"] = dec * m.ln_final.w.detach()


def attr(cache, stack, t, a):
    return cache.logit_attrs(stack, tokens=t, incorrect_tokens=a, pos_slice=-1)


def processed_refs(m, tokens, out, meta):
    row = tokens[:1]
    logits, cache = m.run_with_cache(row)
    top = logits[0, -1].topk(2).indices
    t, a = int(top[0]), int(top[1])
    meta["target"], meta["against"] = str(t), str(a)
    tt, aa = torch.tensor([t]), torch.tensor([a])
    heads = cache.stack_head_results(-1, pos_slice=-1)
    out["p.heads_attr"] = attr(cache, heads, tt, aa)
    last = lambda x: x[:, :, -1]  # noqa: E731  [n, batch, pos, d] -> [n, batch, d]
    out["p.embed_attr"] = attr(cache, last(cache["hook_embed"][None]), tt, aa)[0]
    if "hook_pos_embed" in cache.cache_dict:
        out["p.pos_embed_attr"] = attr(cache, last(cache["hook_pos_embed"][None]), tt, aa)[0]
    L = m.cfg.n_layers
    bias = torch.stack([m.blocks[l].attn.b_O.detach().expand(row.shape[0], row.shape[1], -1)
                        for l in range(L)])
    out["p.attn_bias_attr"] = attr(cache, last(bias), tt, aa)[:, 0]
    mlp = torch.stack([cache[f"blocks.{l}.hook_mlp_out"] for l in range(L)])
    out["p.mlp_attr"] = attr(cache, last(mlp), tt, aa)[:, 0]
    out["p.logit_diff"] = (logits[0, -1, t] - logits[0, -1, a]).reshape(1)
    out["p.const"] = (m.b_U[t] - m.b_U[a]).detach().reshape(1)


def main():
    (FIX / "analysis").mkdir(exist_ok=True)
    for name in ["gpt2_tiny", "gpt2_small4", "llama_gqa", "llama_odd"]:
        cfg, sd = load(name)
        tokens = load_file(str(FIX / name / "reference.safetensors"))["tokens"].long()
        out, meta = {}, {"fixture": name}
        with torch.no_grad():
            unprocessed_refs(load_tl(cfg, sd), tokens, out, meta)
            processed_refs(processed(cfg, sd), tokens, out, meta)
        out = {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}
        out["tokens"] = tokens.to(torch.int64).contiguous()
        save_file(out, str(FIX / "analysis" / f"{name}.safetensors"), metadata=meta)
        print(name, "target", meta["target"], "against", meta["against"],
              "logit_diff", float(out["p.logit_diff"]),
              "sum", float(out["p.heads_attr"].sum() + out["p.embed_attr"].sum()
                           + out.get("p.pos_embed_attr", torch.zeros(1)).sum()
                           + out["p.attn_bias_attr"].sum() + out["p.mlp_attr"].sum()
                           + out["p.const"]))


if __name__ == "__main__":
    main()
