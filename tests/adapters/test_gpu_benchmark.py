"""benchmarks.gpu --quick: the GPU throughput script runs end to end on CPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_quick_runs_and_reports_json():
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["benchmark"] == "gpu" and figures["quick"] is True
    assert set(figures["results"]) == {"naive", "mixture", "memory"}
    for name, r in figures["results"].items():
        assert r["mp_per_s"] > 0 and r["finite"] and r["tiles_per_step"] >= 1, name
    # work counted by the engine: mixture's overlap costs more than naive tiling
    assert figures["results"]["mixture"]["token_evals_per_mp"] > figures["results"]["naive"]["token_evals_per_mp"]
    assert any(line.startswith("naive") for line in lines)
