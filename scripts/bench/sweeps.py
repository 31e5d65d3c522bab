#!/usr/bin/env python3
"""Side-by-side sweep benchmark: TransformerLens 2.x vs hooklens' naive loop vs hooklens' sweep
engine, same machine, same thread count, same weights and tokens, in one run. Writes a
Markdown table (times, ratios, GFLOP/s, peak memory, max |hooklens - TL|).

Run with the reference venv's python (torch, transformers, transformer_lens), after
`cargo build --release`:
  python scripts/bench/sweeps.py [--threads 2] [--out docs/bench-sweeps.md]
Models: a GPT-2-small-shaped random checkpoint (made once under $HOOKLENS_HOME/bench) and
the default SmolLM2-135M GGUF (scripts/fetch-model).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("HOOKLENS_HOME") or Path.home() / ".cache/hooklens")
BIN = ROOT / "target/release/hooklens"


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def hooklens(model, threads, args, out_json):
    cmd = ["/usr/bin/time", "-f", "%M", str(BIN), "--model", str(model), "--threads", str(threads),
           *args, "--json", out_json]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"hooklens failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    max_rss_kb = int(res.stderr.strip().splitlines()[-1])
    doc = json.loads(Path(out_json).read_text())
    doc["max_rss_mb"] = max_rss_kb / 1024
    return doc


def tl(model_args, threads, clean, corrupted, target, other):
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, str(ROOT / "scripts/bench/sweeps_tl.py"),
           *model_args, "--clean", clean, "--corrupted", corrupted, "--target", str(target),
           "--other", str(other), "--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"TL failed:\n{res.stderr[-3000:]}")
    doc = json.loads(res.stdout)
    doc["max_rss_mb"] = int(res.stderr.strip().splitlines()[-1]) / 1024
    return doc


def bench_model(name, model_path, tl_args, n_vocab, threads, tmp):
    ids = [(i * 7919 + 13) % n_vocab for i in range(16)]
    corrupted = list(ids)
    for p in (3, 4, 5):
        corrupted[p] = (corrupted[p] + 1000) % n_vocab
    # Metric tokens: the last prompt token and its neighbour id (any two distinct ids work).
    target, other = ids[-1], (ids[-1] + 1) % n_vocab
    clean_s = ",".join(map(str, ids))
    corr_s = ",".join(map(str, corrupted))
    rows = []
    t = tl(tl_args, threads, clean_s, corr_s, target, other)
    abl = ["ablate", "--tokens", clean_s, "--target-id", str(target), "--metric", "logprob"]
    pat = ["patch", "--clean-tokens", clean_s, "--corrupted-tokens", corr_s, "--target-id", str(target),
           "--against-id", str(other), "--site", "resid-pre"]
    for sweep, args, tl_key in (("head zero-ablation", abl, "ablation"), ("resid_pre patching", pat, "patch_resid_pre")):
        naive = hooklens(model_path, threads, args + ["--naive"], f"{tmp}/naive.json")
        fast = hooklens(model_path, threads, args, f"{tmp}/fast.json")
        tl_vals = t[tl_key]["values"]
        if tl_key == "patch_resid_pre":
            flat_tl = [v for row in tl_vals for v in row]
        else:
            flat_tl = tl_vals
        ours = [r["value"] for r in fast["results"]]
        diff = max(abs(a - b) for a, b in zip(ours, flat_tl))
        rows.append({
            "model": name, "sweep": sweep, "variants": fast["stats"]["variants"],
            "tl_s": t[tl_key]["seconds"], "naive_s": naive["stats"]["seconds"], "fast_s": fast["stats"]["seconds"],
            "fast_gflop": fast["stats"]["gflop"], "naive_gflop": naive["stats"]["gflop"],
            "arena_mb": fast["stats"]["peak_arena_bytes"] / 2**20, "rss_mb": fast["max_rss_mb"],
            "naive_rss_mb": naive["max_rss_mb"], "tl_rss_mb": t["max_rss_mb"], "max_diff_vs_tl": diff,
        })
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows, t["torch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs/bench-sweeps.md"))
    args = ap.parse_args()
    gpt2 = HOME / "bench/gpt2-small-random"
    subprocess.run([sys.executable, str(ROOT / "scripts/bench/make_gpt2_small_random.py"), str(gpt2)], check=True)
    smol = HOME / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with tempfile.TemporaryDirectory() as tmp:
        rows, torch_version = bench_model("GPT-2 small shape (random)", gpt2, ["--gpt2-dir", str(gpt2)], 50257, args.threads, tmp)
        more, _ = bench_model("SmolLM2-135M", smol, ["--gguf", str(smol)], 49152, args.threads, tmp)
        rows += more
    lines = [
        "# Sweep benchmarks: hooklens vs TransformerLens",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads {args.threads} for every",
        f"contender (torch {torch_version}, `torch.set_num_threads`). 16-token prompts, one run each,",
        "model load excluded. Produced by `python scripts/bench/sweeps.py` (reference venv) after",
        "`cargo build --release`; the numbers below are that command's output.",
        "",
        "- TL: `run_with_hooks` per head (ablation), `transformer_lens.patching.get_act_patch_resid_pre` (patching).",
        "- naive: hooklens, one full forward per variant (`--naive`).",
        "- engine: hooklens' batched sweep engine (default).",
        "- GFLOP/s: the FLOPs the engine's passes need (its own count) over its time.",
        "- peak RSS includes the f32 weights; arena is the engine's largest activation buffer set.",
        "",
        "| model | sweep | variants | TL s | naive s | engine s | engine vs TL | engine vs naive | engine GFLOP/s | arena MiB | RSS MiB (engine / naive / TL) | max abs diff vs TL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sweep']} | {r['variants']} | {r['tl_s']:.2f} | {r['naive_s']:.2f} | "
            f"{r['fast_s']:.3f} | {r['tl_s'] / r['fast_s']:.1f}x | {r['naive_s'] / r['fast_s']:.1f}x | "
            f"{r['fast_gflop'] / r['fast_s']:.1f} | {r['arena_mb']:.1f} | "
            f"{r['rss_mb']:.0f} / {r['naive_rss_mb']:.0f} / {r['tl_rss_mb']:.0f} | {r['max_diff_vs_tl']:.1e} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
