"""One noise field for the whole canvas: initial noise and every ancestral/SDE draw.

All noise is drawn on the host in float32 from generators seeded by (seed, purpose), so overlapping
windows see the same values by construction and the bits do not depend on the device or tiling.
"""
from __future__ import annotations

import torch


class NoiseField:
    def __init__(self, seed: int):
        self.seed = int(seed)

    def generator(self, purpose: int) -> torch.Generator:
        # purpose 0 is seeded with the seed itself, as the untiled reference sampler does
        return torch.Generator(device="cpu").manual_seed(self.seed + 1_000_003 * purpose)

    def initial(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator(0), dtype=torch.float32)

    def step_generator(self) -> torch.Generator:
        """Handed to the scheduler: ancestral/SDE steps draw canvas-sized noise from it."""
        return self.generator(1)
