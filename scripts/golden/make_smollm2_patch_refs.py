#!/usr/bin/env python3
"""Activation-patching reference on the default model, computed with HF transformers hooks
(independent of hooklens): resid_pre patching from "The Eiffel Tower is in the city of"
(clean) into "The Colosseum is in the city of" (corrupted), metric logit(" Paris") -
logit(" Rome") at the last position, for every (layer, position).

Writes tests/fixtures/smollm2/patch_resid_pre.json. Run with the reference venv:
  /path/to/venv/bin/python scripts/golden/make_smollm2_patch_refs.py [--home DIR]
"""
import argparse
import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CLEAN = "The Eiffel Tower is in the city of"
CORRUPTED = "The Colosseum is in the city of"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default=os.environ.get("HOOKLENS_HOME") or str(Path.home() / ".cache/hooklens"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/fixtures/smollm2/patch_resid_pre.json"))
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.home, gguf_file=NAME)
    model = AutoModelForCausalLM.from_pretrained(args.home, gguf_file=NAME, dtype=torch.float32).eval()
    clean = tok(CLEAN)["input_ids"]
    corrupted = tok(CORRUPTED)["input_ids"]
    assert len(clean) == len(corrupted), (clean, corrupted)
    target = tok(" Paris", add_special_tokens=False)["input_ids"]
    other = tok(" Rome", add_special_tokens=False)["input_ids"]
    # The tokenizer may prepend BOS even here; keep the last id of each single word.
    target, other = target[-1], other[-1]

    def metric(logits):
        last = logits[0, -1]
        return float(last[target] - last[other])

    with torch.no_grad():
        out = model(torch.tensor([clean]), output_hidden_states=True)
        clean_hidden = out.hidden_states  # [n_layers + 1] x [1, p, d]; [L] enters layer L
        clean_value = metric(out.logits)
        corrupted_value = metric(model(torch.tensor([corrupted])).logits)
        layers = model.model.layers
        values = []
        for L in range(len(layers)):
            row = []
            for pos in range(len(clean)):
                def pre_hook(module, args, kwargs, L=L, pos=pos):
                    if args:
                        h = args[0].clone()
                        h[:, pos] = clean_hidden[L][:, pos]
                        return (h,) + tuple(args[1:]), kwargs
                    h = kwargs["hidden_states"].clone()
                    h[:, pos] = clean_hidden[L][:, pos]
                    kwargs["hidden_states"] = h
                    return args, kwargs
                handle = layers[L].register_forward_pre_hook(pre_hook, with_kwargs=True)
                row.append(metric(model(torch.tensor([corrupted])).logits))
                handle.remove()
            values.append(row)
            print(f"layer {L:2d}: " + " ".join(f"{v:6.2f}" for v in row))
    doc = {
        "clean": CLEAN, "corrupted": CORRUPTED,
        "clean_ids": clean, "corrupted_ids": corrupted,
        "target_id": target, "other_id": other,
        "clean_value": clean_value, "corrupted_value": corrupted_value,
        "values": values,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print("clean", clean_value, "corrupted", corrupted_value, "wrote", args.out)


if __name__ == "__main__":
    main()
