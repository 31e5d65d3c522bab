#!/usr/bin/env python3
"""Whole-process benchmark: what a user waits for, model load included, next to
TransformerLens 2.x in the same run on the same machine and thread count.

Rows (each timed in interleaved rounds, medians over rounds, ratios per round):
- `hooklens run` of a 1x512 prompt (GPT-2-small-shaped random checkpoint, and SmolLM2) as a
  process, against TL's in-process forward alone (model already loaded) and against a
  `python -c` process of TL that loads the model and runs the same forward;
- the 144-head (GPT-2 shape) / 270-head (SmolLM2) zero-ablation sweep as a hooklens process
  against TL's in-process loop (`scripts/bench/sweeps_tl.py`, load excluded);
- the README's main command (SmolLM2 270-head ablation of " Paris") end to end;
- the load alone (`hooklens -v hooks`), with its split, from the packed-weight cache and
  with the cache off (HOOKLENS_WEIGHT_CACHE=off).
Other forward shapes as whole processes (batches through `run --tokens-file`):
scripts/bench/process_shapes.py.

Before round 1 each model is loaded once, so the packed-weight cache is in place as it is for
every load after a model's first (the first load writes it).

Run with the reference venv's python after `cargo build --release`:
  python scripts/bench/process.py [--threads 2] [--rounds 3] [--out docs/bench-process.md]
HOOKLENS_KERNEL (avx512, avx2, portable) is passed on to hooklens and named in the output.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from forward import cpu_model, kernel_path  # noqa: E402
from make_fixtures import gpt2_tl_cfg, llama_tl_cfg, load_tl  # noqa: E402
from transformer_lens.pretrained.weight_conversions import (  # noqa: E402
    convert_gpt2_weights, convert_llama_weights)

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("HOOKLENS_HOME") or Path.home() / ".cache/hooklens")
BIN = ROOT / "target/release/hooklens"
README_ARGS = ["ablate", "--prompt", "The Eiffel Tower is in the city of", "--target", " Paris"]

# A TL process: load the model the way forward.py does, run one forward of the given rows of ids.
TL_PROCESS = """
import sys, torch
sys.path.insert(0, {golden!r})
from make_fixtures import gpt2_tl_cfg, llama_tl_cfg, load_tl
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights, convert_llama_weights
from transformers import AutoModelForCausalLM, GPT2LMHeadModel
torch.set_num_threads({threads}); torch.set_grad_enabled(False)
if {gpt2!r}:
    hf = GPT2LMHeadModel.from_pretrained({path!r}, dtype=torch.float32)
    cfg = gpt2_tl_cfg(hf.config); cfg.use_attn_result = False
    tl = load_tl(cfg, convert_gpt2_weights(hf, cfg))
else:
    hf = AutoModelForCausalLM.from_pretrained({parent!r}, gguf_file={name!r}, dtype=torch.float32)
    cfg = llama_tl_cfg(hf.config); cfg.use_attn_result = False
    tl = load_tl(cfg, convert_llama_weights(hf, cfg))
del hf
tl(torch.tensor({rows}))
"""


def load_models():
    """(name, path, is_gpt2, n_ctx, vocab, hf, tl) for the GPT-2-shaped checkpoint (made if
    absent) and SmolLM2, each loaded with HF and converted to TL as forward.py does."""
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel
    gpt2_dir = HOME / "bench/gpt2-small-random"
    subprocess.run([sys.executable, str(ROOT / "scripts/bench/make_gpt2_small_random.py"), str(gpt2_dir)],
                   check=True)
    smol = HOME / "SmolLM2-135M-Instruct.Q4_1.gguf"
    hf_gpt2 = GPT2LMHeadModel.from_pretrained(gpt2_dir, dtype=torch.float32).eval()
    cfg = gpt2_tl_cfg(hf_gpt2.config)
    cfg.use_attn_result = False
    tl_gpt2 = load_tl(cfg, convert_gpt2_weights(hf_gpt2, cfg)).eval()
    hf_smol = AutoModelForCausalLM.from_pretrained(smol.parent, gguf_file=smol.name, dtype=torch.float32).eval()
    cfg_smol = llama_tl_cfg(hf_smol.config)
    cfg_smol.use_attn_result = False
    tl_smol = load_tl(cfg_smol, convert_llama_weights(hf_smol, cfg_smol)).eval()
    return [("GPT-2 small shape", gpt2_dir, True, cfg.n_ctx, cfg.d_vocab, hf_gpt2, tl_gpt2),
            ("SmolLM2-135M", smol, False, cfg_smol.n_ctx, cfg_smol.d_vocab, hf_smol, tl_smol)]


def wall(cmd, env=None):
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return time.perf_counter() - start, res


def ids_for(n, vocab):
    return [(i * 7919 + 13) % vocab for i in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--out", default=str(ROOT / "docs/bench-process.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    (_, gpt2_dir, *_, tl_gpt2), (_, smol, *_, tl_smol) = load_models()
    models = [("GPT-2 small shape", gpt2_dir, tl_gpt2, 50257, True, 144),
              ("SmolLM2-135M", smol, tl_smol, 49152, False, 270)]
    base = [str(BIN), "--threads", str(args.threads)]
    rows = {}

    def add(key, value):
        rows.setdefault(key, []).append(value)

    for _, path, *_ in models:
        wall(base + ["--model", str(path), "hooks"])  # writes the packed-weight cache if absent
    no_cache = {**os.environ, "HOOKLENS_WEIGHT_CACHE": "off"}
    for r in range(args.rounds):
        for name, path, tl, vocab, gpt2, heads in models:
            ids = ids_for(args.tokens, vocab)
            ids_s = ",".join(map(str, ids))
            time.sleep(1.0)  # let torch's spinning OpenMP threads go to sleep
            t_run, _ = wall(base + ["--model", str(path), "run", "--tokens", ids_s])
            t_load, res = wall(base + ["--model", str(path), "-v", "hooks"])
            split = [l for l in res.stderr.splitlines() if l.startswith("load ")]
            t_load_off, res_off = wall(base + ["--model", str(path), "-v", "hooks"], env=no_cache)
            split_off = [l for l in res_off.stderr.splitlines() if l.startswith("load ")]
            t_tl_fwd = min(timed(lambda: tl(torch.tensor([ids]))) for _ in range(3))
            code = TL_PROCESS.format(golden=str(ROOT / "scripts/golden"), threads=args.threads, gpt2=gpt2,
                                     path=str(path), parent=str(path.parent), name=path.name, rows=f"[[{ids_s}]]")
            t_tl_proc, _ = wall([sys.executable, "-c", code])
            sweep_ids = ",".join(map(str, ids_for(16, vocab)))
            target = ids_for(16, vocab)[-1]
            time.sleep(1.0)
            t_sweep, _ = wall(base + ["--model", str(path), "ablate", "--tokens", sweep_ids, "--target-id",
                                      str(target), "--metric", "logprob"])
            _, res = wall([sys.executable, str(ROOT / "scripts/bench/sweeps_tl.py"),
                           *(["--gpt2-dir", str(path)] if gpt2 else ["--gguf", str(path)]),
                           "--clean", sweep_ids, "--corrupted", sweep_ids, "--target", str(target),
                           "--other", str((target + 1) % vocab), "--threads", str(args.threads),
                           "--ablation-only"])
            t_tl_sweep = json.loads(res.stdout)["ablation"]["seconds"]
            add((name, "run"), (t_run, t_tl_fwd, t_tl_proc, t_load, split[-1] if split else "",
                                t_load_off, split_off[-1] if split_off else ""))
            add((name, "sweep"), (t_sweep, t_tl_sweep, heads))
            print(f"round {r + 1} {name}: run {t_run:.2f} s (TL fwd {t_tl_fwd:.2f}, TL process {t_tl_proc:.2f}), "
                  f"load {t_load:.2f}; sweep {t_sweep:.2f} s (TL loop {t_tl_sweep:.2f})", file=sys.stderr)
        t_readme, _ = wall(base + README_ARGS)
        add(("readme", ""), t_readme)
        print(f"round {r + 1}: README command {t_readme:.2f} s", file=sys.stderr)
    write(args, rows)


def timed(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def write(args, rows):
    mid = statistics.median
    cpu = cpu_model()
    lines = [
        "# Whole-process benchmarks: hooklens as a user runs it, against TransformerLens",
        "",
        f"Machine: {cpu}; {args.threads} threads for every contender (torch {torch.__version__}); hooklens kernel "
        f"path {kernel_path()}. {args.rounds} interleaved rounds; times are medians over rounds, ratios the "
        "median (and range) of the per-round ratios. Model files in the page cache (warm). Produced by "
        "`python scripts/bench/process.py` (reference venv) after `cargo build --release`.",
        "",
        f"## `hooklens run` of a 1x{args.tokens} prompt, whole process",
        "",
        "| model | hooklens process s | load process s | load process without the cache s | TL forward alone s | TL process s | TL forward / hooklens process | TL process / hooklens process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("GPT-2 small shape", "SmolLM2-135M"):
        rs = rows[(name, "run")]
        fwd = [x[1] / x[0] for x in rs]
        proc = [x[2] / x[0] for x in rs]
        lines.append(f"| {name} | {mid(x[0] for x in rs):.2f} | {mid(x[3] for x in rs):.2f} | {mid(x[5] for x in rs):.2f} | "
                     f"{mid(x[1] for x in rs):.2f} | {mid(x[2] for x in rs):.2f} | "
                     f"{mid(fwd):.2f}x ({min(fwd):.2f}-{max(fwd):.2f}) | {mid(proc):.2f}x ({min(proc):.2f}-{max(proc):.2f}) |")
    lines += ["", "Load split (`hooklens -v hooks`, last round; from the cache, then with it off):", ""]
    for name in ("GPT-2 small shape", "SmolLM2-135M"):
        lines.append(f"- {name}: `{rows[(name, 'run')][-1][4]}`")
        lines.append(f"- {name}, cache off: `{rows[(name, 'run')][-1][6]}`")
    lines += ["", "## Zero-ablation of every head, 16 tokens", "",
              "| model | heads | hooklens process s (load included) | TL in-process loop s (load excluded) | ratio |",
              "|---|---|---|---|---|"]
    for name in ("GPT-2 small shape", "SmolLM2-135M"):
        rs = rows[(name, "sweep")]
        ratio = [x[1] / x[0] for x in rs]
        lines.append(f"| {name} | {rs[0][2]} | {mid(x[0] for x in rs):.2f} | {mid(x[1] for x in rs):.2f} | "
                     f"{mid(ratio):.1f}x ({min(ratio):.1f}-{max(ratio):.1f}) |")
    readme = rows[("readme", "")]
    lines += ["", f"README main command (`hooklens {' '.join(README_ARGS[:2])} ... --target \" Paris\"`, "
              f"SmolLM2, 270 heads) end to end: {mid(readme):.2f} s (range {min(readme):.2f}-{max(readme):.2f})."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
