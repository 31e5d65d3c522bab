#!/usr/bin/env python3
"""Dataset sweep benchmark (the dataset issue's benchmark section): a zero ablation of every
head, averaged over many prompts, with

- hooklens: `hooklens ablate --dataset FILE` (every prompt's variants in one batched sweep
  per token length; the engine's own time, model load excluded);
- TL padded: TransformerLens looping over heads, all prompts in one padded batch per head
  (right padding with an explicit attention_mask; the best a TL user does);
- TL nested: TransformerLens' nested loop, prompt x head, one `run_with_hooks` each.

Models: a GPT-2-small-shaped checkpoint with random weights (32 prompts of 10-24 random
tokens, logit difference of two random tokens) and SmolLM2-135M on
examples/datasets/ioi_prompts.jsonl (logit(indirect object) - logit(subject)). The values of
the three agree (the max difference is printed); the table goes into docs/bench-sweeps.md
between the `dataset-sweeps` markers (use --out - to print it only).

Usage (reference venv, after `cargo build --release`, on a quiet machine):
    /work/refvenv/bin/python scripts/bench/dataset_sweeps.py --threads 2
    /work/refvenv/bin/python scripts/bench/dataset_sweeps.py --gpt2-dir tests/fixtures/gpt2_small4 \
        --prompts 4 --skip-smollm2 --out -      # a smoke test in seconds
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "golden"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
from sweeps_tl import load  # noqa: E402

BIN = ROOT / "target" / "release" / "hooklens"
SMOLLM2 = Path(os.environ.get("HOOKLENS_HOME", Path.home() / ".cache" / "hooklens")) / "SmolLM2-135M-Instruct.Q4_1.gguf"
START, END = "<!-- dataset-sweeps:start -->", "<!-- dataset-sweeps:end -->"


def random_dataset(path: Path, n: int, vocab: int, seed: int = 0) -> None:
    """n prompts of 10-24 random token ids, each with two random target tokens."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            ids = [rng.randrange(vocab) for _ in range(rng.randint(10, 24))]
            row = {"tokens": ids, "target_id": rng.randrange(vocab), "against_id": rng.randrange(vocab)}
            f.write(json.dumps(row) + "\n")


def run_hooklens(model: str, dataset: Path, threads: int, out: Path) -> dict:
    env = dict(os.environ, HOOKLENS_THREADS=str(threads))
    cmd = [str(BIN), "--model", model, "ablate", "--dataset", str(dataset), "--json", str(out)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def padded(rows):
    """Right-padded tokens, the attention mask and each row's last real position."""
    n = max(len(r["tokens"]) for r in rows)
    toks = torch.zeros((len(rows), n), dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for b, r in enumerate(rows):
        toks[b, : len(r["tokens"])] = torch.tensor(r["tokens"])
        mask[b, : len(r["tokens"])] = 1
    last = torch.tensor([len(r["tokens"]) - 1 for r in rows])
    return toks, mask, last


def metric(logits_last, rows):
    t = torch.tensor([r["target_id"] for r in rows])
    a = torch.tensor([r["against_id"] for r in rows])
    idx = torch.arange(len(rows))
    return (logits_last[idx, t] - logits_last[idx, a]).double()


def zero_head(head):
    def fn(z, hook):
        z[:, :, head, :] = 0.0
        return z
    return fn


def tl_padded(model, rows):
    """values[layer * n_heads + head][prompt]: one padded batch per head."""
    toks, mask, last = padded(rows)
    idx = torch.arange(len(rows))
    values = []
    started = time.perf_counter()
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hooks = [(f"blocks.{layer}.attn.hook_z", zero_head(head))]
            logits = model.run_with_hooks(toks, attention_mask=mask, fwd_hooks=hooks)
            values.append(metric(logits[idx, last], rows))
    return time.perf_counter() - started, torch.stack(values)


def tl_nested(model, rows):
    """The same values, one run_with_hooks per (prompt, head)."""
    values = torch.zeros((model.cfg.n_layers * model.cfg.n_heads, len(rows)), dtype=torch.double)
    started = time.perf_counter()
    for p, r in enumerate(rows):
        toks = torch.tensor([r["tokens"]])
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                hooks = [(f"blocks.{layer}.attn.hook_z", zero_head(head))]
                logits = model.run_with_hooks(toks, fwd_hooks=hooks)
                values[layer * model.cfg.n_heads + head, p] = metric(logits[:, -1], [r])[0]
    return time.perf_counter() - started, values


def bench(name, model_path, tl_args, dataset, threads, tmp, nested):
    doc = run_hooklens(model_path, dataset, threads, tmp / "hooklens.json")
    per_prompt = doc["per_prompt"]
    rows = [{"tokens": p["tokens"], "target_id": p["metric"]["target"], "against_id": p["metric"]["other"]}
            for p in per_prompt]
    ours = torch.tensor([p["values"] for p in per_prompt], dtype=torch.double).T  # [variant, prompt]
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    model = load(argparse.Namespace(**tl_args))
    model.eval()
    t_pad, v_pad = tl_padded(model, rows)
    line = {
        "model": name,
        "prompts": len(rows),
        "lengths": f"{min(len(r['tokens']) for r in rows)}-{max(len(r['tokens']) for r in rows)}",
        "variants": ours.shape[0] * ours.shape[1],
        "hooklens_s": doc["stats"]["seconds"],
        "passes": doc["stats"]["passes"],
        "gflop": doc["stats"]["gflop"],
        "tl_padded_s": t_pad,
        "diff_padded": float((ours - v_pad).abs().max()),
    }
    if nested:
        t_nest, v_nest = tl_nested(model, rows)
        line["tl_nested_s"] = t_nest
        line["diff_nested"] = float((ours - v_nest).abs().max())
    return line


def table(lines, threads):
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    out = [START, "", "## Dataset sweeps: every head zero-ablated, averaged over prompts", "",
           f"Machine: {cpu}, {os.cpu_count()} logical CPUs; {threads} threads for every contender. "
           "Produced by `python scripts/bench/dataset_sweeps.py` (reference venv) after "
           "`cargo build --release`; hooklens' time is its engine's (model load excluded).", "",
           "| model | prompts | tokens | variants | hooklens s (passes) | hooklens GFLOP (GFLOP/s) | "
           "TL padded s | vs TL padded | TL nested s | vs TL nested | max abs diff (padded / nested) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in lines:
        nested = r.get("tl_nested_s")
        out.append(
            f"| {r['model']} | {r['prompts']} | {r['lengths']} | {r['variants']} | "
            f"{r['hooklens_s']:.3f} ({r['passes']}) | "
            f"{r['gflop']:.1f} ({r['gflop'] / r['hooklens_s']:.1f}) | {r['tl_padded_s']:.2f} | "
            f"{r['tl_padded_s'] / r['hooklens_s']:.1f}x | "
            + (f"{nested:.2f} | {nested / r['hooklens_s']:.1f}x | " if nested else "- | - | ")
            + f"{r['diff_padded']:.1e} / {r.get('diff_nested', float('nan')):.1e} |")
    out += ["", "Targets (the dataset issue): >= 3x TL padded, >= 30x TL nested.", "", END]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gpt2-dir", help="a GPT-2 checkpoint (default: a random GPT-2-small shape, written once)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--no-nested", action="store_true", help="skip TL's nested loop (the slowest)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench-sweeps.md"), help="'-' prints only")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hooklens-dataset-bench-"))
    gpt2 = args.gpt2_dir or str(tmp.parent / "hooklens-gpt2-small-random")
    if not args.gpt2_dir:
        subprocess.run([sys.executable, str(ROOT / "scripts/bench/make_gpt2_small_random.py"), gpt2], check=True)
    vocab = json.loads((Path(gpt2) / "config.json").read_text())["vocab_size"]
    dataset = tmp / "random.jsonl"
    random_dataset(dataset, args.prompts, vocab)
    lines = [bench("GPT-2 small shape (random)" if not args.gpt2_dir else Path(gpt2).name, gpt2,
                   {"gpt2_dir": gpt2, "gguf": None}, dataset, args.threads, tmp, not args.no_nested)]
    if not args.skip_smollm2:
        ioi = ROOT / "examples" / "datasets" / "ioi_prompts.jsonl"
        lines.append(bench("SmolLM2-135M (IOI)", str(SMOLLM2), {"gpt2_dir": None, "gguf": str(SMOLLM2)},
                           ioi, args.threads, tmp, not args.no_nested))
    text = table(lines, args.threads)
    print(text)
    if args.out != "-":
        out = Path(args.out)
        doc = out.read_text() if out.exists() else ""
        if START in doc:
            doc = doc[: doc.index(START)] + text + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + text + "\n"
        Path(args.out).write_text(doc)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
