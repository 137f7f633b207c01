"""Which PyTorch build this machine should get, and why: the installers' one decision.

install.sh, install.ps1 and the macOS .command all run this file with the private Python they have
just installed (standard library only, so it runs before anything else is installed), then install
the lock file it names. The decision itself (`decide`) is a pure function of a `Probe`, so that
the Windows and macOS branches are unit-tested on Linux; `probe` is the only part that touches the
machine.

How each backend is recognised:
- NVIDIA: the driver library (`libcuda.so.1` / `nvcuda.dll`) is loaded with ctypes and asked for
  the newest CUDA version it supports and each GPU's compute capability. No nvidia-smi, no torch:
  a driver without tools still counts, and a CUDA toolkit without a driver does not. The newest
  CUDA build of torch that the driver runs and every GPU's architecture is compiled for wins;
  older GPUs get an older build.
- Apple: macOS on Apple silicon gets PyPI's macOS wheel, which carries MPS.
- AMD: Linux with the ROCm kernel driver (/dev/kfd) and a ROCm runtime (/opt/rocm) gets the ROCm
  build.
- otherwise the CPU build.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

TORCH = "2.13.0"
BACKENDS = ("cpu", "cuda", "mps", "rocm")
# CUDA builds of torch 2.13, newest first: (variant, CUDA version as the driver reports it,
# lowest compute capability compiled for). CUDA 13 dropped Maxwell, Pascal and Volta.
CUDA_BUILDS = (("cu130", 13000, (7, 5)), ("cu128", 12080, (7, 0)), ("cu126", 12060, (5, 0)))
ROCM_BUILD = "rocm7.1"
# Builds PyPI carries; the others come from PyTorch's own package index.
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
PYPI_BUILDS = {("linux-x86_64", "cu130"), ("linux-aarch64", "cu130"), ("macos-arm64", "mps"),
               ("windows-x86_64", "cpu")}


@dataclass(frozen=True)
class Probe:
    """What the installer found on the machine (all the decision depends on)."""
    system: str                                   # "linux", "darwin", "windows"
    machine: str                                  # "x86_64", "arm64", "aarch64"
    cuda_driver: Optional[int] = None             # cuDriverGetVersion, e.g. 12080; None: no driver
    gpu_capabilities: tuple[tuple[int, int], ...] = ()  # compute capability per NVIDIA GPU
    cuda_error: Optional[str] = None              # why the driver could not be asked
    rocm: bool = False                            # /dev/kfd and a ROCm runtime


@dataclass(frozen=True)
class Choice:
    """The build to install: `lock` is the file under installer/locks/."""
    backend: str
    variant: str
    platform: str
    lock: str
    torch: str
    index_url: Optional[str]
    reason: str
    notes: list[str] = field(default_factory=list)


class Unsupported(Exception):
    """No PyTorch build fits this machine (or the backend asked for cannot run on it)."""


def platform_tag(system: str, machine: str) -> str:
    """linux-x86_64, linux-aarch64, macos-arm64 or windows-x86_64; Unsupported otherwise."""
    machine = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}.get(
        machine.lower(), machine.lower())
    if system == "linux" and machine in ("x86_64", "aarch64"):
        return f"linux-{machine}"
    if system == "linux" and machine == "arm64":
        return "linux-aarch64"
    if system == "darwin" and machine in ("arm64", "aarch64"):
        return "macos-arm64"
    if system == "darwin":
        raise Unsupported("PyTorch 2.13 has no builds for Intel Macs; Seamwise needs a Mac with "
                          "Apple silicon, or use another machine as a render box (--lan)")
    if system == "windows" and machine == "x86_64":
        return "windows-x86_64"
    raise Unsupported(f"no PyTorch build for {system} on {machine}")


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _cuda_build(probe: Probe) -> tuple[str, str]:
    """(variant, reason) for the newest CUDA build the driver and every GPU support."""
    oldest = min(probe.gpu_capabilities) if probe.gpu_capabilities else None
    for variant, needs, arch in CUDA_BUILDS:
        if probe.cuda_driver >= needs and (oldest is None or oldest >= arch):
            gpus = (f", {len(probe.gpu_capabilities)} GPU(s), oldest compute capability "
                    f"{oldest[0]}.{oldest[1]}") if oldest else ""
            return variant, (f"NVIDIA driver supports CUDA {_cuda_version(probe.cuda_driver)}"
                             f"{gpus}: CUDA {_cuda_version(needs)} build")
    if oldest is not None and oldest < CUDA_BUILDS[-1][2]:
        raise Unsupported(f"the NVIDIA GPU's compute capability {oldest[0]}.{oldest[1]} is older "
                          "than any CUDA build of PyTorch 2.13 supports; use --backend cpu")
    raise Unsupported(f"the NVIDIA driver supports CUDA {_cuda_version(probe.cuda_driver)}, "
                      f"older than PyTorch 2.13's oldest CUDA build "
                      f"({_cuda_version(CUDA_BUILDS[-1][1])}); update the NVIDIA driver, or "
                      "use --backend cpu")


def decide(probe: Probe, requested: Optional[str] = None) -> Choice:
    """The build for `probe`, or for the backend the user `requested` (--backend)."""
    if requested is not None and requested not in BACKENDS:
        raise Unsupported(f"unknown backend {requested!r} (expected one of {', '.join(BACKENDS)})")
    tag = platform_tag(probe.system, probe.machine)
    notes: list[str] = []
    if probe.cuda_driver is not None:
        detected = "cuda"
    elif tag == "macos-arm64":
        detected = "mps"
    elif probe.rocm and tag.startswith("linux"):
        detected = "rocm"
    else:
        detected = "cpu"
    backend = requested or detected
    if requested and requested != detected:
        notes.append(f"without --backend this machine would get {detected}")
    if backend == "mps" and tag != "macos-arm64":
        raise Unsupported("the mps backend exists only on Macs with Apple silicon")
    if backend == "rocm" and tag != "linux-x86_64":
        raise Unsupported("PyTorch's ROCm builds exist only for Linux on x86_64")
    if backend == "cuda" and not (tag.startswith("linux") or tag.startswith("windows")):
        raise Unsupported("CUDA builds exist only for Linux and Windows")
    if backend == "cpu" and tag == "macos-arm64":
        backend = "mps"  # one wheel for both on macOS; the CPU stays available through it
        notes.append("macOS has one PyTorch build; it runs on the CPU as well as MPS")

    if backend == "cuda":
        if probe.cuda_driver is None:
            variant, reason = CUDA_BUILDS[0][0], "CUDA requested with --backend"
            notes.append("no NVIDIA driver answered" +
                         (f" ({probe.cuda_error})" if probe.cuda_error else "") +
                         "; the render will fall back to the CPU until one is installed")
        else:
            variant, reason = _cuda_build(probe)
            if requested:
                reason += " (--backend cuda)"
        if tag == "linux-aarch64" and variant != CUDA_BUILDS[0][0]:
            raise Unsupported(f"Linux on ARM has only the CUDA {_cuda_version(CUDA_BUILDS[0][1])} "
                              "build; update the NVIDIA driver, or use --backend cpu")
    elif backend == "mps":
        variant = "mps"
        reason = "Apple silicon: PyTorch's macOS build with Metal (MPS)"
    elif backend == "rocm":
        variant = ROCM_BUILD
        reason = ("AMD GPU with the ROCm driver (/dev/kfd, /opt/rocm)" if probe.rocm
                  else "ROCm requested with --backend")
        if not probe.rocm:
            notes.append("no ROCm driver found; the render will fall back to the CPU")
    else:
        variant = "cpu"
        if requested:
            reason = "CPU requested with --backend"
        elif probe.cuda_error:
            reason = f"no usable NVIDIA driver ({probe.cuda_error}), no ROCm: CPU build"
        else:
            reason = "no NVIDIA driver, Apple silicon or ROCm found: CPU build"
    on_pypi = (tag, variant) in PYPI_BUILDS
    local = "" if on_pypi else f"+{variant}"
    index = None if on_pypi else PYTORCH_INDEX + variant
    return Choice(backend=backend, variant=variant, platform=tag, lock=f"{tag}-{variant}.txt",
                  torch=f"torch=={TORCH}{local}", index_url=index, reason=reason, notes=notes)


def local_wheel(choice: Choice, find_links: list[str]) -> Optional[str]:
    """A wheel of the chosen torch build in one of pip's find-links folders, if any.

    Where pip is set up with a local wheel folder (PIP_FIND_LINKS, `pip config`), the installer
    installs torch from there and does not ask PyTorch's index at all.
    """
    version = choice.torch.split("==", 1)[1]
    system = {"linux": "linux", "macos": "macosx", "windows": "win"}[choice.platform.split("-")[0]]
    for folder in find_links:
        folder = folder.removeprefix("file://")
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.startswith(f"torch-{version}-") and name.endswith(".whl") and \
                    f"{system}_" in name and choice.platform.split("-")[1] in name:
                return os.path.join(folder, name)
    return None


# -- probing (the only part that touches the machine) ---------------------------------------------

def _probe_cuda(system: str) -> tuple[Optional[int], tuple[tuple[int, int], ...], Optional[str]]:
    """(driver's CUDA version, compute capabilities, error) from the NVIDIA driver library."""
    names = {"windows": ["nvcuda.dll"], "linux": ["libcuda.so.1", "libcuda.so"]}.get(system, [])
    lib = None
    for name in names:
        try:
            lib = (ctypes.WinDLL if system == "windows" else ctypes.CDLL)(name)  # type: ignore
            break
        except OSError:
            continue
    if lib is None:
        return None, (), None
    if lib.cuInit(0) != 0:
        return None, (), "the NVIDIA driver is installed but cuInit failed (no GPU, or a driver " \
                         "and kernel module out of step)"
    version, count = ctypes.c_int(), ctypes.c_int()
    if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None, (), "the NVIDIA driver did not report its CUDA version"
    caps = []
    if lib.cuDeviceGetCount(ctypes.byref(count)) == 0:
        for i in range(count.value):
            dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
            if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
                continue
            # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
            lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)
            lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
            caps.append((major.value, minor.value))
    if not caps:
        return None, (), "the NVIDIA driver answered but sees no GPU"
    return version.value, tuple(caps), None


def _probe_rocm() -> bool:
    runtime = Path(os.environ.get("ROCM_PATH", "/opt/rocm"))
    return Path("/dev/kfd").exists() and (runtime.is_dir() or
                                          ctypes.util.find_library("amdhip64") is not None)


def probe() -> Probe:
    system = platform.system().lower()
    machine = platform.machine()
    driver, caps, error = _probe_cuda(system)
    return Probe(system=system, machine=machine, cuda_driver=driver, gpu_capabilities=caps,
                 cuda_error=error, rocm=system == "linux" and _probe_rocm())


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Pick the PyTorch build for this machine.")
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    parser.add_argument("--format", choices=("json", "shell"), default="json",
                        help="shell: KEY='value' lines for a POSIX shell to eval")
    parser.add_argument("--find-links", default="",
                        help="pip's find-links folders, separated by spaces or the path separator")
    args = parser.parse_args(argv)
    found = probe()
    try:
        choice = decide(found, args.backend)
    except Unsupported as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    wheel = local_wheel(choice, args.find_links.replace(os.pathsep, " ").split())
    if wheel:
        choice = replace(choice, index_url=None, notes=[*choice.notes, f"torch from {wheel}"])
    if args.format == "json":
        print(json.dumps({**asdict(choice), "probe": asdict(found)}))
    else:
        for key, value in asdict(choice).items():
            text = "; ".join(value) if isinstance(value, list) else (value or "")
            print(f"{key.upper()}='" + str(text).replace("'", "'\\''") + "'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
