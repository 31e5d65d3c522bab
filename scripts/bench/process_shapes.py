#!/usr/bin/env python3
"""Forward shapes as whole processes: `hooklens run --tokens-file` (load included) against
TransformerLens 2.x as a `python -c` process (imports, HF read, TL conversion, one forward)
and against TL's and HF's in-process forward alone (model already loaded), same machine,
same thread count, in one run.

Shapes (batch x tokens) default to 1x16, 1x2048, 8x128, 144x16 (1x512 is process.py's main
table); a shape longer than a model's context (GPT-2's 1x2048) is skipped for that model.
The rows are forward.py's token ids. hooklens computes the logits at each row's last
position, which is what `run` reports; HF and TL compute every position's (what their
forward returns).

Each round runs every contender at every shape, so ratios are taken within a round; the
table shows medians over rounds and the median and range of the per-round ratios.

Run with the reference venv's python after `cargo build --release`:
  python scripts/bench/process_shapes.py [--threads 2] [--rounds 3] [--shapes 1x16,8x128]
                                         [--out FILE | --out -]
HOOKLENS_KERNEL (avx512, avx2, portable) is passed on to hooklens and named in the output.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from forward import cpu_model, kernel_path, median, tokens  # noqa: E402
from process import BIN, ROOT, TL_PROCESS, load_models, wall  # noqa: E402

SHAPES = [(1, 16), (1, 2048), (8, 128), (144, 16)]


def one_shape(args, model, shape, scratch):
    """One round of one shape: (hooklens process, TL process, TL forward, HF forward) seconds."""
    name, path, gpt2, _, vocab, hf, tl = model
    batch, seq = shape
    ids = tokens(batch, seq, vocab)  # [batch, seq]
    file = scratch / f"{'gpt2' if gpt2 else 'smol'}-{batch}x{seq}.txt"
    file.write_text("\n".join(",".join(map(str, row)) for row in ids.tolist()) + "\n")
    base = [str(BIN), "--threads", str(args.threads), "--model", str(path)]
    time.sleep(1.0)  # let torch's spinning OpenMP threads go to sleep
    t_ours, _ = wall(base + ["run", "--tokens-file", str(file), "--top", "1"])
    reps = 1 if batch * seq >= 2048 else 3
    t_tl = median(reps, lambda: tl(ids))
    t_hf = median(reps, lambda: hf(ids))
    code = TL_PROCESS.format(golden=str(ROOT / "scripts/golden"), threads=args.threads, gpt2=gpt2,
                             path=str(path), parent=str(path.parent), name=path.name, rows=ids.tolist())
    t_tl_proc, _ = wall([sys.executable, "-c", code])
    return t_ours, t_tl_proc, t_tl, t_hf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default=",".join(f"{b}x{p}" for b, p in SHAPES))
    ap.add_argument("--out", default="-", help="Markdown file to write, or - for stdout only")
    args = ap.parse_args()
    wanted = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    models = load_models()
    for _, path, *_ in models:  # writes the packed-weight cache if absent
        wall([str(BIN), "--threads", str(args.threads), "--model", str(path), "hooks"])
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            for model in models:
                for shape in (s for s in wanted if s[1] <= model[3]):
                    t = one_shape(args, model, shape, Path(scratch))
                    rows.setdefault((model[0], shape), []).append(t)
                    print(f"round {r + 1} {model[0]} {shape[0]}x{shape[1]}: hooklens process {t[0]:.2f} s, "
                          f"TL process {t[1]:.2f}, TL forward {t[2]:.3f}, HF forward {t[3]:.3f}", file=sys.stderr)
    write(args, models, wanted, rows)


def ratio_cell(values):
    mid = statistics.median(values)
    return f"{mid:.2f}x ({min(values):.2f}-{max(values):.2f})"


def write(args, models, wanted, rows):
    mid = statistics.median
    cpu = cpu_model()
    lines = [
        "## Forward shapes as whole processes",
        "",
        f"Machine: {cpu}; {args.threads} threads for every contender (torch {torch.__version__}); hooklens "
        f"kernel path {kernel_path()}. {args.rounds} rounds; times are medians over rounds, ratios the median "
        "(and range) of the per-round ratios. Produced by `python scripts/bench/process_shapes.py` (reference "
        "venv) after `cargo build --release`. hooklens: `hooklens run --tokens-file F --top 1` as a process, "
        "load included; TL process: `python -c` importing torch / transformers / transformer_lens, reading the "
        "checkpoint with HF, converting it and running one forward; TL / HF forward: in-process, model loaded.",
        "",
        "| model | shape | hooklens process s | TL process s | TL forward s | HF forward s | TL process / hooklens | "
        "TL forward / hooklens | HF forward / hooklens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _, _, n_ctx, *_ in models:
        for b, p in wanted:
            if p > n_ctx:
                lines.append(f"| {name} | {b}x{p} | longer than the context ({n_ctx}) | | | | | | |")
                continue
            rs = rows[(name, (b, p))]
            lines.append(
                f"| {name} | {b}x{p} | {mid(x[0] for x in rs):.2f} | {mid(x[1] for x in rs):.2f} | "
                f"{mid(x[2] for x in rs):.3f} | {mid(x[3] for x in rs):.3f} | {ratio_cell([x[1] / x[0] for x in rs])} | "
                f"{ratio_cell([x[2] / x[0] for x in rs])} | {ratio_cell([x[3] / x[0] for x in rs])} |")
    text = "\n".join(lines) + "\n"
    if args.out != "-":
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
