#!/usr/bin/env bash
# Runs every GPU check in one go on a machine with an NVIDIA GPU and no Rust toolchain:
# usage: scripts/gpu-check.sh OUT_DIR (with target/gpu-bundle from scripts/gpu-bundle.sh).
# Writes OUT_DIR/gpu-check.log and OUT_DIR/summary.md; exits non-zero if a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$out"
bundle=target/gpu-bundle
# The PTX compiled here by NVRTC 13.0 (the driver of these GPUs accepts its PTX version).
export HOOKLENS_PTX_DIR="$PWD/$bundle/ptx"
export HOOKLENS_REQUIRE_GPU=1 RUST_BACKTRACE=1
log="$out/gpu-check.log"
status=0
step() {
    echo "== $*" | tee -a "$log"
    local t0=$SECONDS
    if timeout 240 "$@" >> "$log" 2>&1; then r=ok; else r="FAILED ($?)"; status=1; fi
    echo "   $r in $((SECONDS - t0)) s" | tee -a "$log"
    echo "| \`$*\` | $r | $((SECONDS - t0)) s |" >> "$out/summary.md"
}
{
    echo "# GPU check $(date -u +%Y-%m-%dT%H:%MZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    echo
    echo "| step | result | time |"
    echo "|---|---|---|"
} > "$out/summary.md"
# NVRTC on the GPU machine itself, if it has one (informative: the PTX above is what runs).
if "$bundle/bin/cuda_nvrtc" --test-threads 1 >> "$log" 2>&1; then echo "   local NVRTC: ok" | tee -a "$log"; fi
step "$bundle/bin/cuda_parity" --test-threads 1 --nocapture
m=tests/fixtures/gpt2_small4
step "$bundle/bin/hooklens" --device cuda --model "$m" run --tokens 1,2,3,4,5 --top 3
step "$bundle/bin/hooklens" --device cuda --model "$m" ablate --tokens 1,2,3,4,5,6,7 --target-id 3
step "$bundle/bin/hooklens" --device cpu --model "$m" ablate --tokens 1,2,3,4,5,6,7 --target-id 3
# The intervention-overhead table on the GPU, and on this machine's CPU beside it (the
# small fixture: n_ctx 48; the tool carries no real model)
# (docs/bench-overhead.md). The Python case runs on the CPU only; it is left out here.
cases=plain,empty_slots,read_all,cache_all,builtin_zero_head,closure_zero_head,c_callback_zero_head,sweep_engine,sweep_naive
for dev in cuda cpu; do
    step "$bundle/bin/hooklens" --device "$dev" --model "$m" bench --shapes 1x16,8x48 \
        --cases "$cases" --reps 5 --json "$out/bench-$dev.json"
done
cat "$out/summary.md"
exit $status
