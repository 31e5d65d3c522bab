#!/usr/bin/env bash
# Prepares the GPU check on a machine without a GPU: builds the CUDA test binaries and the CLI,
# strips their debug info (the device tool carries at most 64 MiB) and puts them, with the
# kernels' PTX, in target/gpu-bundle/. Then run scripts/gpu-check.sh on the GPU machine
# with target/gpu-bundle carried (see docs/cuda.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/gpu-bundle
rm -rf "$out" && mkdir -p "$out/bin"
cargo build --release --bin hooklens
cp target/release/hooklens "$out/bin/"
# The test executables, by name (cargo prints their paths as JSON).
cargo test --release --no-run --test cuda_parity --test cuda_nvrtc --message-format=json \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["kind"] == ["test"]:
        shutil.copy(msg["executable"], sys.argv[1] + "/bin/" + msg["target"]["name"])
' "$out"
strip --strip-debug "$out"/bin/*
# The kernels' PTX from NVRTC 13.0 (a GPU machine's NVRTC may be newer than its driver
# accepts, and the library is too large to carry): gpu-check.sh points HOOKLENS_PTX_DIR at it.
[ -f target/nvrtc/nvidia/cu13/lib/libnvrtc.so.13 ] \
    || python3 -m pip install --quiet --target target/nvrtc "nvidia-cuda-nvrtc==13.0.*"
LD_LIBRARY_PATH="$PWD/target/nvrtc/nvidia/cu13/lib" HOOKLENS_REQUIRE_NVRTC=1 \
    HOOKLENS_WRITE_PTX="$PWD/$out/ptx" "$out/bin/cuda_nvrtc" --test-threads 1 > /dev/null
du -sh "$out"
