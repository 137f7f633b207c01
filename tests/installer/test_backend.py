"""The installers' backend decision: every platform's branch, run here as a pure function."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.installer.helpers import INSTALLER, load_installer_module

backend = load_installer_module("backend")
Probe, decide, Unsupported = backend.Probe, backend.decide, backend.Unsupported


def linux(**kw):
    return Probe(system="linux", machine="x86_64", **kw)


def test_every_choice_names_a_lock_file_that_exists():
    probes = [linux(), linux(rocm=True), linux(cuda_driver=13000, gpu_capabilities=((8, 9),)),
              linux(cuda_driver=12080, gpu_capabilities=((8, 6),)),
              linux(cuda_driver=12060, gpu_capabilities=((6, 1),)),
              Probe("darwin", "arm64"), Probe("windows", "AMD64"),
              Probe("windows", "AMD64", cuda_driver=12080, gpu_capabilities=((8, 6),)),
              Probe("linux", "aarch64"),
              Probe("linux", "aarch64", cuda_driver=13000, gpu_capabilities=((9, 0),))]
    for p in probes:
        choice = decide(p)
        lock = INSTALLER / "locks" / choice.lock
        assert lock.is_file(), (p, choice.lock)
        pins = [line for line in lock.read_text().splitlines() if line.startswith("torch==")]
        assert pins == [choice.torch], (choice.lock, pins)


def test_no_gpu_gets_the_cpu_build_pinned_to_the_local_version():
    choice = decide(linux())
    assert (choice.backend, choice.lock, choice.torch) == ("cpu", "linux-x86_64-cpu.txt",
                                                           "torch==2.13.0+cpu")
    assert "CPU" in choice.reason


@pytest.mark.parametrize("driver,caps,variant", [
    (13000, ((8, 9),), "cu130"),          # new driver, Ada
    (13020, ((7, 5), (9, 0)), "cu130"),   # oldest GPU decides, Turing is still in CUDA 13
    (12080, ((8, 6),), "cu128"),          # 570-series driver: CUDA 12.8
    (12090, ((8, 6),), "cu128"),
    (13000, ((7, 0),), "cu128"),          # Volta: dropped by CUDA 13, gets 12.8
    (13000, ((6, 1),), "cu126"),          # Pascal: only the 12.6 build still carries it
    (12060, ((8, 0),), "cu126"),
])
def test_nvidia_gets_the_newest_build_the_driver_and_gpus_support(driver, caps, variant):
    choice = decide(linux(cuda_driver=driver, gpu_capabilities=caps))
    assert (choice.backend, choice.variant) == ("cuda", variant)
    assert f"CUDA {driver // 1000}.{driver % 1000 // 10}" in choice.reason
    assert choice.index_url == (None if variant == "cu130" else backend.PYTORCH_INDEX + variant)


def test_nvidia_driver_too_old_is_refused_with_advice():
    with pytest.raises(Unsupported, match="update the NVIDIA driver"):
        decide(linux(cuda_driver=12020, gpu_capabilities=((8, 6),)))
    with pytest.raises(Unsupported, match="compute capability 3.5"):
        decide(linux(cuda_driver=12080, gpu_capabilities=((3, 5),)))


def test_apple_silicon_gets_mps_and_intel_macs_are_refused():
    choice = decide(Probe("darwin", "arm64"))
    assert (choice.backend, choice.lock, choice.torch) == ("mps", "macos-arm64-mps.txt",
                                                           "torch==2.13.0")
    assert decide(Probe("darwin", "arm64"), "cpu").lock == "macos-arm64-mps.txt"
    with pytest.raises(Unsupported, match="Intel Macs"):
        decide(Probe("darwin", "x86_64"))


def test_amd_rocm_on_linux_only():
    choice = decide(linux(rocm=True))
    assert (choice.backend, choice.variant) == ("rocm", backend.ROCM_BUILD)
    assert choice.index_url == backend.PYTORCH_INDEX + backend.ROCM_BUILD
    with pytest.raises(Unsupported):
        decide(Probe("windows", "AMD64"), "rocm")


def test_nvidia_wins_over_rocm_and_windows_cuda_comes_from_pytorchs_index():
    assert decide(linux(cuda_driver=13000, gpu_capabilities=((8, 0),), rocm=True)).backend == \
        "cuda"
    win = decide(Probe("windows", "AMD64", cuda_driver=13000, gpu_capabilities=((8, 9),)))
    assert (win.lock, win.torch) == ("windows-x86_64-cu130.txt", "torch==2.13.0+cu130")
    assert win.index_url == backend.PYTORCH_INDEX + "cu130"
    assert decide(Probe("windows", "AMD64")).torch == "torch==2.13.0"  # PyPI's Windows wheel


def test_override_beats_detection_and_says_so():
    gpu = linux(cuda_driver=13000, gpu_capabilities=((8, 9),))
    assert decide(gpu, "cpu").backend == "cpu"
    assert "--backend" in decide(gpu, "cpu").reason
    assert decide(gpu, "cpu").notes == ["without --backend this machine would get cuda"]
    assert decide(gpu, "cuda").notes == []
    forced = decide(linux(cuda_error="cuInit failed"), "cuda")
    assert forced.variant == "cu130" and "cuInit failed" in forced.notes[1]
    with pytest.raises(Unsupported, match="Apple silicon"):
        decide(linux(), "mps")
    with pytest.raises(Unsupported, match="unknown backend"):
        decide(linux(), "directml")


def test_local_wheel_folder_replaces_pytorchs_index(tmp_path):
    choice = decide(linux())
    assert backend.local_wheel(choice, [str(tmp_path)]) is None
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-macosx_14_0_arm64.whl").touch()
    assert backend.local_wheel(choice, [str(tmp_path)]) is None   # another platform's wheel
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.touch()
    assert backend.local_wheel(choice, ["/nonexistent", f"file://{tmp_path}"]) == str(wheel)


def test_command_line_prints_json_and_shell(tmp_path):
    script = str(INSTALLER / "backend.py")
    out = subprocess.run([sys.executable, script, "--backend", "cpu"], capture_output=True,
                         text=True, check=True).stdout
    got = json.loads(out)
    assert got["backend"] == "cpu" and "probe" in got
    shell = subprocess.run([sys.executable, script, "--backend", "cpu", "--format", "shell"],
                           capture_output=True, text=True, check=True).stdout
    assert "BACKEND='cpu'" in shell.splitlines()
    bad = subprocess.run([sys.executable, script, "--backend", "mps"], capture_output=True,
                         text=True)
    assert bad.returncode == 3 and "Apple silicon" in bad.stderr
