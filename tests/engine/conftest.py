"""Small models for the engine tests: random-weight models of the bundled and of SD's layout,
and the trained bundled model where its weights are present."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.adapters.tiny import TinyAdapter

SMALL_TINY_UNET = dict(
    sample_size=32, in_channels=6, out_channels=3, block_out_channels=(16, 32, 32),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    layers_per_block=1, norm_num_groups=8, attention_head_dim=16,
)


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    """Bundled architecture, narrowed, random weights: native 32 px, grid 4, default tile 64."""
    return TinyAdapter.from_config(torch.device("cpu"), torch.float32, SMALL_TINY_UNET)


@pytest.fixture(scope="session")
def photo():
    """A real photograph crop (scikit-image's astronaut), uint8 RGB."""
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:196, 150:270])
