#!/usr/bin/env bash
# One measurement session for docs/bench-gemm.md: RUNS rounds of (cargo bench, torch) at 2 and 1
# threads, each run's criterion results kept, then the tables (fastest of the runs' medians).
#   scripts/bench/gemm_all.sh OUTDIR [RUNS] [PYTHON]
set -euo pipefail
out=${1:?usage: gemm_all.sh OUTDIR [RUNS] [PYTHON]}
runs=${2:-2}
py=${3:-/work/refvenv/bin/python}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$out"
rm -rf "$target/criterion"
lscpu > "$out/lscpu.txt"
cargo bench --bench gemm --no-run
for run in $(seq 1 "$runs"); do
  for t in 2 1; do
    echo "== run $run, $t thread(s): $(cut -d' ' -f1-3 /proc/loadavg) load"
    HOOKLENS_BENCH_THREADS=$t cargo bench --bench gemm > "$out/run${run}_t$t.log" 2>&1
    rm -rf "$out/run${run}_t$t"
    cp -r "$target/criterion" "$out/run${run}_t$t"
    "$py" scripts/bench/gemm_torch.py --threads "$t" --json "$out/torch_run${run}_t$t.json" \
      > "$out/torch_run${run}_t$t.log" 2>&1
  done
done
for t in 2 1; do
  python3 scripts/bench/gemm_table.py --threads "$t" --criterion "$out"/run*_t$t \
    --torch "$out"/torch_run*_t$t.json
  echo
done > "$out/tables.md"
echo "tables: $out/tables.md"
