import pytest
import torch
from hypothesis import given, settings, strategies as st

from engine.tiling import windows as tiling
from engine.tiling.strategies import STRATEGIES, make_strategy


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 60), tile=st.integers(2, 24),
       overlap=st.integers(0, 12), name=st.sampled_from(STRATEGIES), step=st.integers(0, 5))
def test_weights_cover_the_canvas_and_sum_to_one(h, w, tile, overlap, name, step):
    grid = 4
    H, W = h * grid, w * grid
    s = make_strategy(name, tile * grid, overlap * grid, grid, seed=3)
    plan = s.plan(H, W, step)
    total = tiling.weight_sum(plan, H, W)
    assert bool((total > 0).all()), "a canvas pixel has no weight"
    fused = torch.zeros(H, W, dtype=torch.float64)
    for t in plan:
        fused[t.y.start:t.y.stop, t.x.start:t.x.stop] += tiling.tile_weight(t, H, W) / \
            total[t.y.start:t.y.stop, t.x.start:t.x.stop]
    assert torch.allclose(fused, torch.ones_like(fused), atol=1e-12)
    for t in plan:   # windows sit on the model's downsampling grid and inside the canvas
        assert t.y.start % grid == 0 and t.x.start % grid == 0
        assert (t.y.stop - t.y.start) % grid == 0 and (t.x.stop - t.x.start) % grid == 0
        assert 0 <= t.y.start < t.y.stop <= H and 0 <= t.x.start < t.x.stop <= W


def test_memory_cores_tile_the_canvas_once_and_halo_extends_them():
    s = make_strategy("memory", 64, 16, 8)
    plan = s.plan(200, 136)
    owned = torch.zeros(200, 136)
    for t in plan:
        owned[t.y.core_start:t.y.core_stop, t.x.core_start:t.x.core_stop] += 1
        assert t.y.start == max(0, t.y.core_start - 8) and t.x.stop == min(136, t.x.core_stop + 8)
    assert bool((owned == 1).all())


def test_spot_windows_move_between_steps():
    s = make_strategy("spot", 64, None, 8, seed=1)
    firsts = {tuple(t.window(256, 256) for t in s.plan(256, 256, k)) for k in range(6)}
    assert len(firsts) > 1
    assert all(sum(t.shape[0] * t.shape[1] for t in s.plan(256, 256, k)) == 256 * 256 for k in range(6))


def test_mixture_weights_are_gaussian_and_multidiffusion_flat():
    mix = make_strategy("mixture", 64, None, 8).plan(128, 128)[0]
    w = tiling.tile_weight(mix, 128, 128)
    assert w[32, 32] > 100 * w[0, 32]
    flat = make_strategy("multidiffusion", 64, None, 8).plan(128, 128)[0]
    assert bool((tiling.tile_weight(flat, 128, 128) == 1).all())


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError):
        make_strategy("quilt", 64, None, 8)
