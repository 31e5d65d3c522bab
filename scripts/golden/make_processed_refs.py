#!/usr/bin/env python3
"""TransformerLens references for hooklens' weight processing (`LoadOptions::tl()`, `--process tl`).

For the random-weight checkpoints gpt2_tiny (LayerNorm, tied embeddings) and llama_gqa (RMSNorm,
grouped-query attention) and the tokens of their `reference.safetensors`, builds the TL model
the way `HookedTransformer.from_pretrained` does with its default processing: the config's
normalization becomes `LNPre` / `RMSPre`, then `load_and_process_state_dict(fold_ln=True,
center_writing_weights=True, center_unembed=True, fold_value_biases=True)` (TL skips
center_writing_weights for RMSNorm models and folds only the norm weights there). Writes
tests/fixtures/processed/<name>.safetensors (float32, plus `tokens` int64):

- every hook value of `run_with_cache(tokens)` under its TL name (both layers, whole batch);
- `logits`;
- `w.<NAME>`: the processed `model.<NAME>` for W_E, W_pos (GPT-2), W_Q, W_K, W_V, W_O, b_Q, b_K,
  b_V, b_O, W_in, W_gate (Llama), W_out, b_in, b_out, W_U, b_U.

Metadata: `fixture`, `normalization_type` (LNPre / RMSPre), the package versions.

Run (after make_fixtures.py): /work/refvenv/bin/python scripts/golden/make_processed_refs.py
"""
import copy
import importlib.metadata
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_analysis_refs import FIX, NAMES, load  # noqa: E402

torch.set_num_threads(1)


def processed_from_pretrained(cfg, sd):
    """TL's from_pretrained processing on the same weights."""
    cfg = copy.deepcopy(cfg)
    cfg.normalization_type = {"LN": "LNPre", "RMS": "RMSPre"}[cfg.normalization_type]
    m = HookedTransformer(cfg)
    m.load_and_process_state_dict({k: v.clone() for k, v in sd.items()}, fold_ln=True,
                                  center_writing_weights=True, center_unembed=True,
                                  fold_value_biases=True, refactor_factored_attn_matrices=False)
    return m.eval()


def main():
    out_dir = FIX / "processed"
    out_dir.mkdir(exist_ok=True)
    for name in ["gpt2_tiny", "llama_gqa"]:
        cfg, sd = load(name)
        tokens = load_file(str(FIX / name / "reference.safetensors"))["tokens"].long()
        with torch.no_grad():
            m = processed_from_pretrained(cfg, sd)
            logits, cache = m.run_with_cache(tokens)
            out = {k: v for k, v in cache.cache_dict.items()}
            out["logits"] = logits
            names = NAMES + (["W_pos"] if cfg.positional_embedding_type == "standard"
                             else ["W_gate"])
            for n in names:
                out[f"w.{n}"] = getattr(m, n)
        out = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in out.items()}
        out["tokens"] = tokens.to(torch.int64).contiguous()
        meta = {
            "fixture": name,
            "normalization_type": m.cfg.normalization_type,
            "transformer_lens_version": importlib.metadata.version("transformer_lens"),
            "torch_version": torch.__version__,
        }
        save_file(out, str(out_dir / f"{name}.safetensors"), metadata=meta)
        print(name, len(out), "tensors", m.cfg.normalization_type)


if __name__ == "__main__":
    main()
