"""Pooled GroupNorm statistics: exact over tiles, between-tile term included, fp16-safe."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.layerwise.stats import ChannelMoments, NormAffine
from engine.layerwise.store import ActivationStore, DiskActivation, RamActivation, SplitActivation


def _tiles(x, ys, xs):
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            yield x[:, :, y0:y1, x0:x1]


def test_pooled_moments_equal_whole_image_group_norm():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 37, 29, generator=g) * 2 + 1
    x[:, :, :10] += 5  # one bright band: tiles differ strongly in mean
    gn = torch.nn.GroupNorm(4, 16, eps=1e-6)
    gn.weight.data = torch.randn(16, generator=g)
    gn.bias.data = torch.randn(16, generator=g)
    m = ChannelMoments.empty(16)
    for t in _tiles(x, [0, 10, 11, 30, 37], [0, 7, 29]):  # unequal tiles, each pixel once
        m.add_tile(t)
    assert m.count == 37 * 29
    out = NormAffine.from_moments(gn, m).apply(x)
    assert torch.allclose(out, gn(x), atol=1e-5)


def test_between_tile_term_matters():
    """Summing per-tile variances (as pixel-weighted means) underestimates a two-tone image."""
    x = torch.cat([torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)], dim=2)
    m = ChannelMoments.empty(1)
    a, b = ChannelMoments.of_tile(x[:, :, :8]), ChannelMoments.of_tile(x[:, :, 8:])
    m.merge(a)
    m.merge(b)
    _, var = m.group_stats(1)
    assert float(var) == pytest.approx(0.25)
    within_only = (a.m2 + b.m2) / m.count
    assert float(within_only) == 0.0


def test_fp16_statistics_do_not_overflow():
    """Sums of squares of fp16 activations overflow fp16 (max 65504); the moments do not."""
    g = torch.Generator().manual_seed(1)
    x64 = torch.randn(1, 8, 64, 64, generator=g, dtype=torch.float64) * 300 + 3000
    x = x64.half()
    assert torch.isinf(x.pow(2).sum())  # the naive fp16 accumulation fails
    m = ChannelMoments.empty(8)
    for t in _tiles(x, [0, 32, 64], [0, 20, 64]):
        m.add_tile(t)
    mean, var = m.group_stats(2)
    ref = x.double().view(2, -1)
    assert torch.allclose(mean, ref.mean(1), rtol=1e-6)
    assert torch.allclose(var, ref.var(1, unbiased=False), rtol=1e-4)
    gn = torch.nn.GroupNorm(2, 8)
    out = NormAffine.from_moments(gn, m).apply(x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, F.group_norm(x.double(), 2).float(), atol=2e-3)


@pytest.mark.parametrize("kind", ["ram", "disk", "split"])
def test_store_round_trip_and_clipping(kind, tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((17, 13, 5)).astype(np.float32)
    act = {"ram": lambda: RamActivation(17, 13, 5, np.float32),
           "disk": lambda: DiskActivation(17, 13, 5, np.float32, str(tmp_path)),
           "split": lambda: SplitActivation(RamActivation(3, 13, 5, np.float32),
                                            DiskActivation(14, 13, 5, np.float32, str(tmp_path)))}[kind]()
    act.write(0, 0, data[:9])
    act.write(9, 0, data[9:, :6])
    act.write(9, 6, data[9:, 6:])
    block, cut = act.read(-2, 5, 10, 16)
    assert cut == (2, 0, 0, 3)
    assert np.array_equal(block, data[0:5, 10:13])
    block, _ = act.read(0, 17, 0, 13)
    assert np.array_equal(block, data)
    act.close()


def test_store_spills_beyond_budget(tmp_path):
    store = ActivationStore(ram_budget=1000, directory=str(tmp_path))
    a = store.allocate(10, 10, 2, np.float32)  # 800 bytes: RAM
    b = store.allocate(10, 10, 2, np.float32)  # would exceed: the 2 rows that fit in RAM, 8 on disk
    assert isinstance(a, RamActivation) and isinstance(b, SplitActivation) and b.split == 2
    assert store.spilled_bytes == 640 and store.ram_in_use == 960
    store.release(a)
    assert isinstance(store.allocate(10, 10, 2, np.float32), RamActivation)
    store.release(b)
