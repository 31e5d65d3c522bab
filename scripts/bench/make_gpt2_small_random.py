#!/usr/bin/env python3
"""Writes a GPT-2-small-shaped checkpoint with random weights (HF format, f32) for benchmarks:
12 layers, d_model 768, 12 heads, n_ctx 1024, vocab 50257 (~500 MB). Real GPT-2 weights are
not installable here; speed does not depend on the values.

Usage: python make_gpt2_small_random.py OUT_DIR
"""
import sys
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    out = Path(sys.argv[1])
    if (out / "model.safetensors").exists():
        print("present:", out)
        return
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())
    model.save_pretrained(out, safe_serialization=True)
    print("wrote", out)


if __name__ == "__main__":
    main()
