#!/usr/bin/env python3
"""TransformerLens side of the sweep benchmarks: a per-head zero-ablation loop with
run_with_hooks (last-position log-prob) and transformer_lens.patching.get_act_patch_resid_pre
(logit difference), on the same weights and tokens hooklens uses. Prints JSON with the times
and every value, so the runner can also check that the numbers agree.

Usage: python sweeps_tl.py (--gpt2-dir DIR | --gguf FILE) --clean IDS --corrupted IDS
           --target ID --other ID --threads N
"""
import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
from make_fixtures import gpt2_tl_cfg, llama_tl_cfg, load_tl  # noqa: E402
from transformer_lens import patching  # noqa: E402
from transformer_lens.pretrained.weight_conversions import (  # noqa: E402
    convert_gpt2_weights, convert_llama_weights)


def load(args):
    if args.gpt2_dir:
        from transformers import GPT2LMHeadModel
        hf = GPT2LMHeadModel.from_pretrained(args.gpt2_dir, dtype=torch.float32)
        cfg = gpt2_tl_cfg(hf.config)
        cfg.use_attn_result = False
        return load_tl(cfg, convert_gpt2_weights(hf, cfg))
    from transformers import AutoModelForCausalLM
    path = Path(args.gguf)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    cfg = llama_tl_cfg(hf.config)
    cfg.use_attn_result = False
    return load_tl(cfg, convert_llama_weights(hf, cfg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpt2-dir")
    ap.add_argument("--gguf")
    ap.add_argument("--clean", required=True)
    ap.add_argument("--corrupted", required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--other", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ablation-only", action="store_true", help="skip the resid_pre patching sweep")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model = load(args)
    model.eval()
    clean = torch.tensor([[int(x) for x in args.clean.split(",")]])
    corrupted = torch.tensor([[int(x) for x in args.corrupted.split(",")]])
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads

    def zero_head(z, hook, head):
        z[:, :, head, :] = 0.0
        return z

    model(clean)  # warm-up
    t0 = time.perf_counter()
    clean_lp = float(torch.log_softmax(model(clean)[0, -1], -1)[args.target])
    ablation = []
    for layer in range(n_layers):
        for head in range(n_heads):
            logits = model.run_with_hooks(
                clean, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", partial(zero_head, head=head))])
            ablation.append(float(torch.log_softmax(logits[0, -1], -1)[args.target]))
    t_ablation = time.perf_counter() - t0

    def metric(logits):
        return logits[0, -1, args.target] - logits[0, -1, args.other]

    doc = {
        "threads": args.threads,
        "torch": torch.__version__,
        "ablation": {"seconds": t_ablation, "clean": clean_lp, "values": ablation},
    }
    if not args.ablation_only:
        t0 = time.perf_counter()
        _, clean_cache = model.run_with_cache(clean)
        grid = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
        doc["patch_resid_pre"] = {"seconds": time.perf_counter() - t0, "values": grid.tolist()}
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
