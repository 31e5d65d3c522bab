#!/usr/bin/env python3
"""Side-by-side forward-pass benchmark: HF transformers vs TransformerLens 2.x vs hooklens,
same machine, same thread count, same weights, in one run. Shapes (batch x tokens):
1x16, 1x512, 1x2048, 8x128, 144x16 by default (a shape longer than a model's context, GPT-2's 1x2048,
is skipped for that model). Full logits everywhere (what HF and TL compute). Writes Markdown.
Whole-process comparisons (load included) are scripts/bench/process.py.

Run with the reference venv's python after `cargo build --release`:
  python scripts/bench/forward.py [--threads 2] [--reps 5] [--rounds 3] [--shapes 1x16,8x128]
                                  [--out docs/bench-forward.md]
HOOKLENS_KERNEL (avx512, avx2, portable) is passed on to hooklens and named in the output.

The machine's speed drifts over minutes, so the contenders are timed in rounds: each round runs
hooklens (every shape, both models) and then HF and TL (every shape); ratios are taken within a
round and the table shows each side's median over rounds and the median and range of the
per-round ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
from make_fixtures import gpt2_tl_cfg, llama_tl_cfg, load_tl  # noqa: E402
from transformer_lens.pretrained.weight_conversions import (  # noqa: E402
    convert_gpt2_weights, convert_llama_weights)

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("HOOKLENS_HOME") or Path.home() / ".cache/hooklens")
SHAPES = [(1, 16), (1, 512), (1, 2048), (8, 128), (144, 16)]


def kernel_path():
    """The kernel path hooklens takes here: HOOKLENS_KERNEL if set, else the CPU's best."""
    flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
    best = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags and "fma" in flags else "portable"
    forced = os.environ.get("HOOKLENS_KERNEL")
    return f"{forced} (forced with HOOKLENS_KERNEL)" if forced else f"{best} (the CPU's best)"


def cpu_model():
    """The first core's model name from /proc/cpuinfo with its family and model numbers (the
    name alone does not tell CPU generations apart: "AMD EPYC" is Zen 1, 3 and 4 alike)."""
    first_core = open("/proc/cpuinfo").read().split("\n\n")[0]
    fields = {}
    for line in first_core.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown")
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def median(reps, f):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def tokens(batch, seq, vocab):
    return torch.tensor([[(b * 131 + i * 7919 + 17) % vocab for i in range(seq)] for b in range(batch)])


def bench_results(rows, shapes):
    """Per shape, in order: the plain pass's median (s) and the read-only-hook case's ratio to it,
    from `hooklens bench --json`'s rows."""
    def row(case, shape):
        return next(r for r in rows if r["case"] == case and r["shape"] == shape)
    return [{"forward_s": row("plain", f"{b}x{p}")["median_ms"] / 1e3,
             "read_all_hooks_ratio": row("read_all", f"{b}x{p}")["ratio"]} for b, p in shapes]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs/bench-forward.md"))
    ap.add_argument("--shapes", default=",".join(f"{b}x{p}" for b, p in SHAPES))
    args = ap.parse_args()
    wanted = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel
    gpt2_dir = HOME / "bench/gpt2-small-random"
    subprocess.run([sys.executable, str(ROOT / "scripts/bench/make_gpt2_small_random.py"), str(gpt2_dir)], check=True)
    smol = HOME / "SmolLM2-135M-Instruct.Q4_1.gguf"
    models = []
    hf = GPT2LMHeadModel.from_pretrained(gpt2_dir, dtype=torch.float32).eval()
    cfg = gpt2_tl_cfg(hf.config)
    cfg.use_attn_result = False
    models.append(("GPT-2 small shape", gpt2_dir, hf, load_tl(cfg, convert_gpt2_weights(hf, cfg)).eval(), 50257,
                   [s for s in wanted if s[1] <= cfg.n_ctx]))
    hf = AutoModelForCausalLM.from_pretrained(smol.parent, gguf_file=smol.name, dtype=torch.float32).eval()
    cfg = llama_tl_cfg(hf.config)
    cfg.use_attn_result = False
    models.append(("SmolLM2-135M", smol, hf, load_tl(cfg, convert_llama_weights(hf, cfg)).eval(), 49152,
                   [s for s in wanted if s[1] <= cfg.n_ctx]))
    # (model, shape) -> per round: (hf s, tl s, hooklens result)
    runs = {(m[0], shape): [] for m in models for shape in m[5]}
    for r in range(args.rounds):
        # torch's idle OpenMP threads spin for a while after each op and would steal the cores
        # from the hooklens subprocess: let them go to sleep first.
        time.sleep(2.0)
        ours = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, path, *_, shapes in models:
                out = Path(tmp) / "bench.json"
                subprocess.run([str(ROOT / "target/release/hooklens"), "--model", str(path), "--threads",
                                str(args.threads), "bench", "--shapes", ",".join(f"{b}x{p}" for b, p in shapes),
                                "--cases", "plain,read_all", "--reps", str(args.reps), "--json", str(out)],
                               check=True, capture_output=True)
                ours[name] = bench_results(json.loads(out.read_text())["rows"], shapes)
        for name, _, hf, tl, vocab, shapes in models:
            for (b, p), o in zip(shapes, ours[name]):
                t = tokens(b, p, vocab)
                t_hf = median(args.reps, lambda: hf(t))
                t_tl = median(args.reps, lambda: tl(t))
                runs[(name, (b, p))].append((t_hf, t_tl, o))
                print(f"round {r + 1}: {name} {b}x{p}: HF {t_hf * 1e3:.1f} ms, TL {t_tl * 1e3:.1f} ms, "
                      f"hooklens {o['forward_s'] * 1e3:.1f} ms", file=sys.stderr)
    lines = [
        "# Forward-pass benchmarks: hooklens vs HF transformers vs TransformerLens",
        "",
        f"Machine: {cpu_model()}; "
        f"{args.threads} threads for every contender (torch {torch.__version__}); hooklens kernel path "
        f"{kernel_path()}. {args.rounds} rounds; in each,",
        f"every contender's median of {args.reps} runs. Times are medians over rounds; ratios are the median of the",
        "per-round ratios, with their range. Full logits at every position, f32. Produced by",
        "`python scripts/bench/forward.py` (reference venv) after `cargo build --release`; the hook column",
        "comes from `hooklens bench` in the same run.",
        "",
        "| model | shape | HF ms | TL ms | hooklens ms | tokens/s (hooklens) | vs HF (range) | vs TL (range) "
        "| read-only hook at every slot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    mid = statistics.median
    for name, *_, shapes in models:
        for b, p in shapes:
            rs = runs[(name, (b, p))]
            t_hf = mid(x[0] for x in rs)
            t_tl = mid(x[1] for x in rs)
            t_ours = mid(x[2]["forward_s"] for x in rs)
            vs_hf = [x[0] / x[2]["forward_s"] for x in rs]
            vs_tl = [x[1] / x[2]["forward_s"] for x in rs]
            hooks = mid(x[2]["read_all_hooks_ratio"] for x in rs)
            row = (f"| {name} | {b}x{p} | {t_hf * 1e3:.1f} | {t_tl * 1e3:.1f} | {t_ours * 1e3:.1f} | "
                   f"{b * p / t_ours:.0f} | {mid(vs_hf):.2f}x ({min(vs_hf):.2f}-{max(vs_hf):.2f}) | "
                   f"{mid(vs_tl):.2f}x ({min(vs_tl):.2f}-{max(vs_tl):.2f}) | {hooks:.3f}x |")
            lines.append(row)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
