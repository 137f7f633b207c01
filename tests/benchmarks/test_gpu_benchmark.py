"""benchmarks.gpu --quick: the GPU throughput script runs end to end on CPU."""
import json

from benchmarks import gpu


def test_gpu_benchmark_quick_runs_and_reports_json(capsys):
    gpu.main(["--quick"])
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["benchmark"] == "gpu" and figures["quick"] is True
    assert set(figures["results"]) == {"naive", "mixture", "memory", "layerwise"}
    for name, r in figures["results"].items():
        assert r["mp_per_s"] > 0 and r["finite"] and r["tiles_per_step"] >= 1, name
    # work counted by the engine: mixture's overlap costs more than naive tiling
    results = figures["results"]
    assert results["mixture"]["token_evals_per_mp"] > results["naive"]["token_evals_per_mp"]
    assert results["layerwise"]["token_evals_per_mp"] == results["naive"]["token_evals_per_mp"]
    assert any(line.startswith("naive") for line in lines)
