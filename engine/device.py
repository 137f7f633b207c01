"""Where the engine runs and in which precision.

CUDA, then Apple MPS, then CPU. Half precision only on accelerators (bf16 where the GPU supports it,
fp16 otherwise); CPU runs float32, which is both faster there and exact enough to compare runs.
The canvas itself always stays float32 on the host: only windows travel to the device.
"""
from __future__ import annotations

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def make_deterministic(device: torch.device) -> None:
    """Same seed and parameters → same bits on the same device."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA and MPS report exhaustion differently; both mean "try smaller batches"."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def describe(device: torch.device) -> tuple[str, int | None]:
    """(kind, total accelerator memory in bytes or None): what /v1/info reports."""
    if device.type == "cuda":
        return device.type, int(torch.cuda.get_device_properties(device).total_memory)
    return device.type, None


def torch_facts() -> dict:
    """The torch build and the device a render would use, with its name and free memory: what
    `seamwise doctor` and the server's /v1/info report about the machine."""
    import platform
    import sys

    device = pick_device()
    build = ("rocm" if getattr(torch.version, "hip", None) else
             "cuda" if torch.version.cuda else "mps" if sys.platform == "darwin" else "cpu")
    facts = {"torch": torch.__version__, "torch_build": build, "backend": device.type,
             "device": str(device), "device_name": None, "vram_total_bytes": None,
             "vram_free_bytes": None}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info()
        facts.update(device_name=torch.cuda.get_device_name(), vram_total_bytes=total,
                     vram_free_bytes=free)
    elif device.type == "mps":
        facts.update(device_name="Apple GPU (shares RAM)")
    else:
        facts.update(device_name=platform.processor() or platform.machine())
    return facts
