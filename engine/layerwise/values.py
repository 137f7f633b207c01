"""What a `Runner` keeps per activation and how it is laid out: the stored activation with its
channel moments, the dtypes activations are stored in, and the tile grid."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .stats import ChannelMoments
from .store import Activation


@dataclass
class Stored:
    act: Activation
    moments: ChannelMoments | None = None


# numpy has no bfloat16: stored bfloat16 activations are their raw 16-bit patterns, under a
# named dtype so they are never mistaken for numbers.
BF16 = np.dtype([("bfloat16", "<u2")])
STORAGE = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": BF16}


def storage_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype results of a `dtype` computation are returned in (bfloat16 as float32)."""
    return {torch.float16: np.dtype(np.float16), torch.float64: np.dtype(np.float64)}.get(dtype, np.dtype(np.float32))


def tiles(height: int, width: int, tile: int, align: int = 1) -> Iterator[tuple[int, int, int, int]]:
    t = max(align, tile // align * align)
    for y in range(0, height, t):
        for x in range(0, width, t):
            yield y, min(y + t, height), x, min(x + t, width)


