#!/usr/bin/env python3
"""TransformerLens references for hooklens' FactoredMatrix (`model.OV`, `model.QK`; issue 17).

For gpt2_tiny and llama_gqa (GQA: 6 query heads over 2 key/value heads), loads the checkpoint
into TL unprocessed, as make_analysis_refs.py does, and writes
tests/fixtures/factored/<name>.safetensors (float32), for C in OV, QK (TL's `model.OV`,
`model.QK`, `[L, H, d_model, d_model]` factored):

- `C.AB`: `C[1, h0:h1].AB` for the heads named in metadata `ab_heads` ("h0,h1"; for llama_gqa
  heads 2 and 3, one from each key/value group), the only products stored, to keep files small;
- `C.BA` `[L, H, d_head, d_head]`, `C.S` `[L, H, d_head]`, `C.norm` `[L, H]`;
- `C.eig_re` / `C.eig_im` `[L, H, d_head]`: `C.eigenvalues` (torch.linalg.eig's order);
- `C.corner3`: `C.get_corner(3)` (every axis cut to 3) `[2, 3, 3, 3]`;
- `C.l0.S`, `C.l0.corner3`: the same of layer 0's `model.blocks[0].attn.C`;
- `C.get3` = `C[1, 0, 3].AB` `[1, d_model]`, `C.get35` = `C[1, 0, 3, 5].AB` `[1, 1]`,
  `C.head1.S` = `C[:, 1].S` `[L, d_head]` (TL's indexing rules);
- `OVQK.S` = `(OV[1, 0] @ QK[0, 1]).S`; `OV.vec_r` = `OV[1, 0] @ x`, `OV.vec_l` = `x @ OV[1, 0]`
  for `x = linspace(-1, 1, d_model)`; `OV.WU5` = `(OV[1, 0] @ W_U[:, :5]).AB` `[d_model, 5]`,
  `OV.WE4` = `(W_E[:4] @ OV[1, 0]).AB` `[4, d_model]`.

Run (after make_fixtures.py): /work/refvenv/bin/python scripts/golden/make_factored_refs.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_analysis_refs import load  # noqa: E402
from make_fixtures import load_tl, write_reference  # noqa: E402

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "factored"
AB_HEADS = {"gpt2_tiny": (0, 3), "llama_gqa": (2, 4)}


def circuit_refs(m, c, heads, out):
    fm = getattr(m, c)
    h0, h1 = heads
    out[f"{c}.AB"] = fm[1, h0:h1].AB
    out[f"{c}.BA"] = fm.BA
    out[f"{c}.S"] = fm.S
    out[f"{c}.norm"] = fm.norm()
    eig = fm.eigenvalues
    out[f"{c}.eig_re"], out[f"{c}.eig_im"] = eig.real, eig.imag
    out[f"{c}.corner3"] = fm.get_corner(3)
    l0 = getattr(m.blocks[0].attn, c)
    out[f"{c}.l0.S"] = l0.S
    out[f"{c}.l0.corner3"] = l0.get_corner(3)
    out[f"{c}.get3"] = fm[1, 0, 3].AB
    out[f"{c}.get35"] = fm[1, 0, 3, 5].AB
    out[f"{c}.head1.S"] = fm[:, 1].S


def product_refs(m, out):
    ov, qk = m.OV[1, 0], m.QK[0, 1]
    out["OVQK.S"] = (ov @ qk).S
    x = torch.linspace(-1, 1, m.cfg.d_model)
    out["OV.vec_r"] = ov @ x
    out["OV.vec_l"] = x @ ov.A @ ov.B  # TL's x @ OV: torch's @ does not defer to FactoredMatrix
    out["OV.WU5"] = (ov @ m.W_U[:, :5]).AB
    out["OV.WE4"] = (m.W_E[:4] @ ov).AB


def main():
    OUT.mkdir(exist_ok=True)
    for name, heads in AB_HEADS.items():
        cfg, sd = load(name)
        m = load_tl(cfg, sd)
        out = {}
        with torch.no_grad():
            for c in ["OV", "QK"]:
                circuit_refs(m, c, heads, out)
            product_refs(m, out)
            # The vector product of TL's own __rmatmul__ agrees with the plain product.
            assert torch.allclose(m.OV[1, 0].__rmatmul__(torch.linspace(-1, 1, cfg.d_model)),
                                  out["OV.vec_l"], atol=1e-5)
        out = {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}
        meta = {"fixture": name, "ab_heads": f"{heads[0]},{heads[1]}", "ab_layer": "1"}
        path = OUT / f"{name}.safetensors"
        write_reference(path, out, meta)  # byte-deterministic
        print(name, path.stat().st_size, "bytes;", "OV.S[1,0]", out["OV.S"][1, 0][:3].tolist())


if __name__ == "__main__":
    main()
