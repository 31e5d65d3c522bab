"""`hooklens bench --cases python_zero_head`: the command runs a Python hook through this
package in a Python process and reports its row (the CLI binary is the one cargo built)."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("HOOKLENS_BIN", REPO / "target" / "release" / "hooklens"))


def test_bench_times_a_python_hook_through_the_package(tmp_path):
    assert BIN.exists(), f"build the CLI first (cargo build --release): {BIN}"
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            str(BIN), "--model", str(FIXTURES / "gpt2_tiny"), "bench",
            "--shapes", "2x4", "--cases", "plain,python_zero_head", "--reps", "2",
            "--python", sys.executable, "--json", str(out),
        ],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(out.read_text())
    assert [(r["case"], r["shape"]) for r in doc["rows"]] == [
        ("plain", "2x4"), ("python_zero_head", "2x4")
    ]
    row = doc["rows"][1]
    assert row["runs"] == 2 and 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
    # Another process ran it: its copies and heap are not this process's to count.
    assert row["bytes_copied"] is None and row["peak_bytes"] is None
    assert doc["machine"]["versions"]["python"] == platform.python_version()
    assert doc["skipped"] == []
