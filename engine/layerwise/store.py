"""Whole-image activations kept on the accelerator or in RAM while they fit a budget, on disk
when they do not.

Activations are stored height × width × channels so that a tile's rows are contiguous runs of
bytes. The disk store uses positioned reads and writes on an unlinked temporary file rather than
a memory map: pages of a memory map stay in the process's resident set until the kernel evicts
them, so a memory map does not actually bound the process's RAM; the page cache behind pread and
pwrite is reclaimable and not charged to the process.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch


class Activation:
    """An (H, W, C) array that tiles are written into and read back from, with zero padding."""

    def __init__(self, height: int, width: int, channels: int, dtype: np.dtype):
        self.shape = (height, width, channels)
        self.dtype = np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        h, w, c = self.shape
        return h * w * c * self.dtype.itemsize

    def write(self, y0: int, x0: int, block: np.ndarray) -> None:
        raise NotImplementedError

    def _read_valid(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        raise NotImplementedError

    def read(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Read rows [y0, y1) × cols [x0, x1) clipped to the image.

        Returns the valid block and how many rows/cols were cut off (top, bottom, left, right), so
        the caller can zero-pad *after* its pointwise ops, as a padded convolution does.
        """
        h, w, _ = self.shape
        vy0, vy1, vx0, vx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        if vy0 >= vy1 or vx0 >= vx1:
            raise ValueError("tile lies outside the image")
        return self._read_valid(vy0, vy1, vx0, vx1), (vy0 - y0, y1 - vy1, vx0 - x0, x1 - vx1)

    def close(self) -> None:
        pass


class RamActivation(Activation):
    """`out`: the caller's array to fill; `buffer`: spare bytes (a flat uint8 array at least as
    large) to lay the activation over instead of allocating."""

    def __init__(self, height: int, width: int, channels: int, dtype: np.dtype, out: np.ndarray | None = None,
                 buffer: np.ndarray | None = None):
        super().__init__(height, width, channels, dtype)
        self.buffer = None
        if out is not None:
            if out.shape != self.shape:
                raise ValueError(f"output array has shape {out.shape}, expected {self.shape}")
            self.array = out
            self.dtype = out.dtype
        else:
            self.buffer = buffer if buffer is not None else np.empty(self.nbytes, np.uint8)
            self.array = self.buffer[: self.nbytes].view(self.dtype).reshape(self.shape)

    def write(self, y0: int, x0: int, block: np.ndarray) -> None:
        self.array[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block

    def _read_valid(self, y0, y1, x0, x1):
        return np.ascontiguousarray(self.array[y0:y1, x0:x1])

    def close(self) -> None:
        self.array = self.buffer = None


class DiskActivation(Activation):
    def __init__(self, height: int, width: int, channels: int, dtype: np.dtype, directory: str | None):
        super().__init__(height, width, channels, dtype)
        fd, path = tempfile.mkstemp(prefix="seamwise-act-", suffix=".bin", dir=directory)
        os.unlink(path)  # the file vanishes with the descriptor, even if the process dies
        self.fd = fd
        try:
            os.ftruncate(fd, self.nbytes)
        except OSError as exc:
            os.close(fd)
            raise OSError(f"cannot reserve {self.nbytes / 2**30:.1f} GiB for an activation: {exc}") from exc
        self.row_bytes = width * channels * self.dtype.itemsize
        self.px_bytes = channels * self.dtype.itemsize

    def write(self, y0: int, x0: int, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        bh, bw, _ = block.shape
        if x0 == 0 and bw == self.shape[1]:  # whole rows: one write
            self._pwrite(memoryview(block).cast("B"), y0 * self.row_bytes)
            return
        for r in range(bh):
            self._pwrite(memoryview(block[r]).cast("B"), (y0 + r) * self.row_bytes + x0 * self.px_bytes)

    def _pwrite(self, buf: memoryview, offset: int) -> None:
        while len(buf):
            n = os.pwrite(self.fd, buf, offset)
            buf, offset = buf[n:], offset + n

    def _read_valid(self, y0, y1, x0, x1):
        c = self.shape[2]
        out = np.empty((y1 - y0, x1 - x0, c), self.dtype)
        if x0 == 0 and x1 == self.shape[1]:
            self._pread(memoryview(out).cast("B"), y0 * self.row_bytes)
            return out
        for r in range(y1 - y0):
            self._pread(memoryview(out[r]).cast("B"), (y0 + r) * self.row_bytes + x0 * self.px_bytes)
        return out

    def _pread(self, buf: memoryview, offset: int) -> None:
        while len(buf):
            n = os.preadv(self.fd, [buf], offset)
            if n <= 0:
                raise OSError("short read from the activation store")
            buf, offset = buf[n:], offset + n

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SplitActivation(Activation):
    """Rows [0, split) in RAM, the rest on disk: an activation larger than the RAM left, so that
    RAM and disk each stay within their share of the scratch a schedule planned."""

    def __init__(self, ram: RamActivation, disk: DiskActivation):
        h = ram.shape[0] + disk.shape[0]
        super().__init__(h, ram.shape[1], ram.shape[2], ram.dtype)
        self.ram, self.disk, self.split = ram, disk, ram.shape[0]

    def write(self, y0: int, x0: int, block: np.ndarray) -> None:
        k = self.split - y0  # rows of the block that go to RAM
        if k > 0:
            self.ram.write(y0, x0, block[:k])
        if k < block.shape[0]:
            self.disk.write(max(y0 - self.split, 0), x0, block[max(k, 0):])

    def _read_valid(self, y0, y1, x0, x1):
        parts = []
        if y0 < self.split:
            parts.append(self.ram._read_valid(y0, min(y1, self.split), x0, x1))
        if y1 > self.split:
            parts.append(self.disk._read_valid(max(y0, self.split) - self.split, y1 - self.split, x0, x1))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def close(self) -> None:
        self.ram.close()
        self.disk.close()


class DeviceActivation(Activation):
    """An (H, W, C) tensor on the accelerator: an operation reads and writes it without a round
    trip through host memory, which for a whole-canvas UNet would move every activation over the
    bus twice per evaluation. Blocks are tensors, not arrays."""

    def __init__(self, height: int, width: int, channels: int, dtype: torch.dtype, device: torch.device):
        self.shape = (height, width, channels)
        self.tensor = torch.empty(self.shape, dtype=dtype, device=device)

    @property
    def nbytes(self) -> int:
        return self.tensor.numel() * self.tensor.element_size()

    def write(self, y0: int, x0: int, block: torch.Tensor) -> None:
        self.tensor[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block

    def _read_valid(self, y0, y1, x0, x1):
        return self.tensor[y0:y1, x0:x1]

    def close(self) -> None:
        self.tensor = None


@dataclass
class ActivationStore:
    """Allocates activations on the accelerator up to `device_budget` bytes, then in RAM up to
    `ram_budget`, then on disk.

    Released RAM is kept as spare buffers (within the budget, and within `spare_limit`, which a
    caller that knows its peak sets to it) and laid under the next
    activations: a freshly allocated multi-MiB array costs a page fault per 4 KiB on first write,
    which measured as long as the convolutions themselves; a network's activations repeat a few
    sizes, so nearly every allocation after the first few reuses memory already resident."""

    ram_budget: int
    directory: str | None = None
    device: torch.device | None = None   # with device_budget > 0: activations go there first
    device_dtype: torch.dtype | None = None
    device_budget: int = 0
    ram_in_use: int = 0
    device_in_use: int = 0
    spilled_bytes: int = 0
    disk_in_use: int = 0
    peak_scratch: int = 0  # most bytes of RAM + disk activations alive at once (measured, for tests)
    peak_disk: int = 0
    _live: dict = field(default_factory=dict)  # id → (activation, bytes) of everything not yet released
    spare_limit: int | None = None   # RAM (live + spare) above which released buffers are freed
    _spare: list = field(default_factory=list)  # flat uint8 buffers, released and resident

    @property
    def _held_limit(self) -> int:
        return self.ram_budget if self.spare_limit is None else min(self.ram_budget, self.spare_limit)

    @property
    def spare_bytes(self) -> int:
        return sum(b.nbytes for b in self._spare)

    def check_room(self, peak_bytes: int, itemsize: int) -> None:
        """Refuses, before any work, a run that cannot fit: `peak_bytes` of activations (of
        `itemsize` bytes per value) alive at once, of which whatever the accelerator and RAM
        budgets do not hold goes to disk. The disk files are sparse, so without this check a disk
        too small would only show as a failed write halfway through a long run. What is checked
        is a lower bound on the disk a run needs, so a run that could succeed is never refused."""
        on_device = 0
        if self.device_budget > self.device_in_use:
            device_itemsize = torch.empty(0, dtype=self.device_dtype or torch.float32).element_size()
            on_device = (self.device_budget - self.device_in_use) // device_itemsize * itemsize
        spill = peak_bytes - on_device - max(0, self.ram_budget - self.ram_in_use)
        if spill <= 0:
            return
        directory = self.directory or tempfile.gettempdir()
        free = shutil.disk_usage(directory).free
        if spill > free:
            raise OSError(errno.ENOSPC, f"the activations need at least {spill / 2**30:.1f} GiB of "
                          f"temporary disk beyond {self.ram_budget / 2**30:.1f} GiB of RAM, and "
                          f"{directory} has {free / 2**30:.1f} GiB free")

    def allocate(self, height: int, width: int, channels: int, dtype: np.dtype) -> Activation:
        if self.device_budget > 0:
            on_device = height * width * channels * torch.empty(0, dtype=self.device_dtype).element_size()
            if self.device_in_use + on_device <= self.device_budget:
                act = DeviceActivation(height, width, channels, self.device_dtype, self.device)
                self.device_in_use += on_device
                self._live[id(act)] = (act, on_device)
                return act
        nbytes = height * width * channels * np.dtype(dtype).itemsize
        # Same size only: a larger buffer would hold more RAM than the schedule planned for.
        fits = [b for b in self._spare if b.nbytes == nbytes and self.ram_in_use + nbytes <= self.ram_budget]
        if fits:
            buf = fits[0]
            self._spare = [b for b in self._spare if b is not buf]
            act, nbytes = RamActivation(height, width, channels, dtype, buffer=buf), buf.nbytes
            self.ram_in_use += nbytes
        elif self.ram_in_use + nbytes <= self.ram_budget:
            while self._spare and self.ram_in_use + self.spare_bytes + nbytes > self._held_limit:
                self._spare.pop(0)
            act = RamActivation(height, width, channels, dtype)
            self.ram_in_use += nbytes
        else:
            row = width * channels * np.dtype(dtype).itemsize
            rows = min(height - 1, max(0, self.ram_budget - self.ram_in_use) // row)
            while self._spare and self.ram_in_use + self.spare_bytes + rows * row > self._held_limit:
                self._spare.pop(0)
            disk = DiskActivation(height - rows, width, channels, dtype, self.directory)
            act = SplitActivation(RamActivation(rows, width, channels, dtype), disk) if rows else disk
            self.ram_in_use += rows * row
            self.spilled_bytes += disk.nbytes
            self.disk_in_use += disk.nbytes
        self._live[id(act)] = (act, nbytes)
        self.peak_scratch = max(self.peak_scratch, self.ram_in_use + self.disk_in_use)
        self.peak_disk = max(self.peak_disk, self.disk_in_use)
        return act

    def release(self, act: Activation) -> None:
        _, nbytes = self._live.pop(id(act), (None, 0))
        if isinstance(act, DeviceActivation):
            self.device_in_use -= nbytes
        if isinstance(act, DiskActivation):
            self.disk_in_use -= nbytes
        if isinstance(act, SplitActivation):
            self.ram_in_use -= act.ram.nbytes
            self.disk_in_use -= act.disk.nbytes
        if isinstance(act, RamActivation):
            self.ram_in_use -= nbytes
            held = self.ram_in_use + self.spare_bytes
            if act.buffer is not None and held + act.buffer.nbytes <= self._held_limit:
                self._spare.append(act.buffer)
        act.close()

    def close(self) -> None:
        """Release whatever a run left behind (a cancelled or failed run): RAM and disk files,
        and the spare buffers."""
        for act, _ in list(self._live.values()):
            self.release(act)
        self._spare = []
