"""Layerwise evaluation (mechanism 3, exact): the canvas run one operation at a time over tiles
gives the untiled result, whatever the tile, on disk or in RAM, within a selection, and cleans up
after a cancel or an out-of-memory retry."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from engine import api
from engine.denoise.canvas import layerwise_window_bytes
from engine.layerwise.plan import UnsupportedModel, unet_plan
from engine.layerwise.unet import LayerwiseUNet
from engine.mechanisms.switches import Mechanisms

LAYERWISE = {"layerwise": True}
AUTO = {"layerwise": "auto"}   # whole frames where they fit (the bundled model's default is tiles)


def open_fds() -> int:
    """Open descriptors of this process: spilled activations are unlinked files, so a leak shows
    here and not in the directory (Linux; elsewhere the check is skipped)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    return len(os.listdir("/proc/self/fd"))


def _params(**kw):
    return api.RenderParams(**{**dict(steps=2, strength=0.5, seed=2), **kw})


@pytest.fixture(scope="module")
def unet(tiny):
    """The test UNet with every layer randomised (diffusers zero-initialises some output convs)."""
    u = tiny.layerwise_unet()
    g = torch.Generator().manual_seed(0)
    saved = {k: v.clone() for k, v in u.state_dict().items()}
    with torch.no_grad():
        for p in u.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * p.std().clamp(min=0.05) + p.mean())
    yield u
    u.load_state_dict(saved)


@pytest.mark.parametrize("tile", [8, 20, 64])
@pytest.mark.parametrize("size", [(44, 52), (32, 96)])
def test_layerwise_unet_equals_the_full_forward(unet, tile, size):
    x = torch.randn(1, 6, *size, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([400.0])
    with torch.no_grad():
        ref = unet(x, t).sample[0].permute(1, 2, 0).numpy()
        out = LayerwiseUNet(unet, tile)(np.ascontiguousarray(x[0].permute(1, 2, 0).numpy()), t)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_spilling_to_disk_gives_the_same_bits_and_leaves_no_files(unet, tmp_path):
    x = np.random.default_rng(3).standard_normal((40, 48, 6)).astype(np.float32)
    t = torch.tensor([100.0])
    before = open_fds()
    with torch.no_grad():
        ram = LayerwiseUNet(unet, 16)(x, t)
        lw = LayerwiseUNet(unet, 16, ram_budget=0, spill_dir=str(tmp_path))
        disk = lw(x, t)
    assert lw.spilled_bytes > 0 and np.array_equal(ram, disk)
    assert os.listdir(tmp_path) == [] and open_fds() == before


@pytest.mark.parametrize("device_budget", [1 << 30, 300_000])
def test_device_resident_activations_give_the_same_bits(unet, tmp_path, device_budget):
    """The accelerator tier (here CPU tensors standing in for it): everything on the device, or
    split over device, RAM and disk."""
    x = np.random.default_rng(5).standard_normal((40, 48, 6)).astype(np.float32)
    t = torch.tensor([700.0])
    with torch.no_grad():
        ram = LayerwiseUNet(unet, 16)(x, t)
        lw = LayerwiseUNet(unet, 16, ram_budget=200_000, spill_dir=str(tmp_path), device_budget=device_budget)
        tiers = lw(x, t)
    assert np.array_equal(ram, tiers)
    assert (lw.spilled_bytes > 0) == (device_budget < 1 << 30)
    assert lw.store.device_in_use == 0 and os.listdir(tmp_path) == []
    lw.close()


def test_cancel_mid_evaluation_releases_every_spilled_activation(unet, tmp_path):
    x = np.zeros((64, 64, 6), np.float32)
    seen = {"ops": 0}

    def stop_after_a_few(done, total):
        seen["ops"] = done
        if done == 12:
            raise KeyboardInterrupt
    before = open_fds()
    lw = LayerwiseUNet(unet, 16, ram_budget=0, spill_dir=str(tmp_path), on_op=stop_after_a_few)
    with pytest.raises(KeyboardInterrupt), torch.no_grad():
        lw(x, torch.tensor([10.0]))
    assert seen["ops"] == 12 and lw.spilled_bytes > 0 and open_fds() == before


def test_render_with_layerwise_tiles_equals_the_untiled_render(tiny, photo):
    full = api.render(photo, _params(strategy="naive", tile=256), adapter=tiny)
    assert full.stats["tiles"] == 1
    r = api.render(photo, _params(strategy="memory", tile=32, mechanisms=LAYERWISE), adapter=tiny)
    assert r.stats["tiles"] > 4
    assert np.abs(r.image.astype(int) - full.image.astype(int)).max() <= 1
    # the work is the untiled run's: no window is evaluated twice
    assert r.stats["token_evals"] == full.stats["token_evals"]


def test_layerwise_selection_is_bit_identical_outside_and_costs_its_bounding_box(tiny):
    img = (np.random.default_rng(4).random((128, 128, 3)) * 255).astype(np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    mask[5:20, 70:90] = 255
    params = _params(strategy="memory", tile=32, mechanisms=LAYERWISE)
    full = api.render(img, params, adapter=tiny)
    part = api.render(img, params, mask=mask, adapter=tiny)
    assert np.array_equal(part.image[mask == 0], img[mask == 0])
    assert not np.array_equal(part.image[5:20, 70:90], img[5:20, 70:90])
    assert part.stats["token_evals"] * 4 < full.stats["token_evals"]


def test_layerwise_progress_is_per_operation_and_cancel_stops_mid_step(tiny, photo):
    seen: list[api.Progress] = []
    params = _params(mechanisms=LAYERWISE, tile=32)
    api.render(photo, params, progress=seen.append, adapter=tiny)
    denoise = [p for p in seen if p.phase == "denoise"]
    ops = len(unet_plan(tiny.layerwise_unet()).ops)
    assert denoise[-1].tile == denoise[-1].tiles == ops and denoise[-1].unit == "operation"
    seen.clear()

    def after_three_operations():
        return any(p.phase == "denoise" and p.tile >= 3 for p in seen)
    with pytest.raises(api.Cancelled):
        api.render(photo, params, progress=seen.append, should_cancel=after_three_operations,
                   adapter=tiny)
    denoise = [p for p in seen if p.phase == "denoise"]
    assert [p.tile for p in denoise] == [1, 2, 3]     # stopped inside the first step


def _out_of_memory_above(monkeypatch, tile: int) -> None:
    """Layerwise convolutions run out of device memory while their compute tile exceeds `tile`."""
    from engine.layerwise import runner
    original = runner.Runner.conv

    def small_tiles_only(self, op, *args, **kw):
        if self.tile > tile:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, op, *args, **kw)
    monkeypatch.setattr(runner.Runner, "conv", small_tiles_only)


def test_out_of_memory_shrinks_the_layerwise_tile_and_gives_the_same_image(tiny, photo, monkeypatch):
    params = _params(mechanisms=LAYERWISE, tile=64)
    reference = api.render(photo, params, adapter=tiny)
    _out_of_memory_above(monkeypatch, 32)
    r = api.render(photo, params, adapter=tiny, batch_size=4)
    assert r.stats["oom_retries"] == 1 and r.stats["tile"] == 32
    assert np.abs(r.image.astype(int) - reference.image.astype(int)).max() <= 1


def test_layerwise_excludes_the_approximate_statistics_and_bank():
    assert Mechanisms.from_dict(LAYERWISE).layerwise
    for clash in ({"groupnorm": "exact"}, {"kv_bank": True}):
        with pytest.raises(ValueError, match="layerwise"):
            Mechanisms.from_dict({**LAYERWISE, **clash})


def test_layers_it_cannot_reproduce_exactly_are_refused_by_name():
    from diffusers import UNet2DModel
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "ResnetDownsampleBlock2D"),
                       up_block_types=("ResnetUpsampleBlock2D", "UpBlock2D"))
    with pytest.raises(UnsupportedModel, match="down_blocks.1"):
        unet_plan(unet)


def test_auto_runs_layerwise_only_when_the_activations_fit_the_budget(tiny, photo):
    params = dict(strategy="memory", tile=32)
    on = api.render(photo, _params(mechanisms=LAYERWISE, **params), adapter=tiny)
    tiled = api.render(photo, _params(mechanisms={"layerwise": "off"}, **params), adapter=tiny)
    fits = api.render(photo, _params(mechanisms=AUTO, **params), adapter=tiny)
    # this network stores 384 bytes per pixel: 96×120 px need 4.2 MiB, more than 1 MiB
    small = {"layerwise": "auto", "layerwise_ram_gib": 1 / 1024}
    over = api.render(photo, _params(mechanisms=small, **params), adapter=tiny)
    assert on.stats["layerwise"] and fits.stats["layerwise"] and not over.stats["layerwise"]
    assert not tiled.stats["layerwise"]
    assert np.array_equal(fits.image, on.image) and np.array_equal(over.image, tiled.image)


def test_peak_bytes_predicts_what_the_store_holds(unet, monkeypatch):
    from engine.layerwise.store import ActivationStore
    peak = {"bytes": 0}
    allocate = ActivationStore.allocate

    def tracking(self, *args):
        act = allocate(self, *args)
        peak["bytes"] = max(peak["bytes"], self.ram_in_use)
        return act
    monkeypatch.setattr(ActivationStore, "allocate", tracking)
    lw = LayerwiseUNet(unet, 24)
    with torch.no_grad():
        lw(np.zeros((72, 40, 6), np.float32), torch.tensor([10.0]))
    assert peak["bytes"] == lw.plan.peak_bytes(72, 40, 4) > 0


def test_auto_falls_back_to_tiles_for_a_model_it_cannot_unroll_and_on_says_why(tiny, photo, monkeypatch):
    from engine.layerwise import plan

    def refuse(unet):
        raise plan.UnsupportedModel("down_blocks.1: unsupported ResnetDownsampleBlock2D")
    monkeypatch.setattr("engine.layerwise.unet.unet_plan", refuse)
    r = api.render(photo, _params(tile=32), adapter=tiny)
    assert not r.stats["layerwise"]
    with pytest.raises(api.EngineError, match="ResnetDownsampleBlock2D"):
        api.render(photo, _params(tile=32, mechanisms=LAYERWISE), adapter=tiny)


def test_auto_keeps_tiles_for_scattered_selections(tiny):
    img = (np.random.default_rng(6).random((128, 128, 3)) * 255).astype(np.uint8)
    compact, scattered = np.zeros((128, 128), np.uint8), np.zeros((128, 128), np.uint8)
    compact[40:80, 40:80] = 255
    scattered[2:10, 2:10] = scattered[118:126, 118:126] = 255
    params = _params(strategy="memory", tile=32, mechanisms=AUTO)
    a = api.render(img, params, mask=compact, adapter=tiny)
    b = api.render(img, params, mask=scattered, adapter=tiny)
    assert a.stats["layerwise"] and not b.stats["layerwise"]
    assert b.stats["token_evals"] < 128 * 128 * 2     # two corner windows, not the whole frame


def test_float16_storage_halves_the_activations_and_stays_within_a_level(tiny, photo):
    full = api.render(photo, _params(tile=32, mechanisms={"layerwise": "on"}), adapter=tiny)
    half = api.render(photo, _params(tile=32, mechanisms={"layerwise": "on", "layerwise_storage": "float16"}),
                      adapter=tiny)
    assert full.stats["layerwise_storage"] == "float32" and half.stats["layerwise_storage"] == "float16"
    assert np.abs(half.image.astype(int) - full.image.astype(int)).max() <= 1
    # auto: float16 exactly when float32 would not fit the budget but float16 does
    peak32 = unet_plan(tiny.layerwise_unet()).peak_bytes(96, 120, 4)
    between = {**AUTO, "layerwise_ram_gib": 0.75 * peak32 / (1 << 30)}
    r = api.render(photo, _params(tile=32, mechanisms=between), adapter=tiny)
    assert r.stats["layerwise"] and r.stats["layerwise_storage"] == "float16"
    assert np.abs(r.image.astype(int) - full.image.astype(int)).max() <= 1


def test_float16_storage_refuses_activations_it_cannot_hold(unet):
    x = np.full((32, 32, 6), 1e5, np.float32)     # conv_in's output leaves float16's range
    lw = LayerwiseUNet(unet, 16, storage=np.dtype(np.float16))
    with pytest.raises(OverflowError, match="float16"), torch.no_grad():
        lw(x, torch.tensor([10.0]))
    assert lw.store.ram_in_use == 0


def test_a_full_disk_is_a_clear_error_and_leaves_no_descriptor_open(tiny, photo, monkeypatch):
    import errno

    def full(fd, buf, offset):
        raise OSError(errno.ENOSPC, "No space left on device")
    before = open_fds()
    monkeypatch.setattr(os, "pwrite", full)
    spill = {"layerwise": "on", "layerwise_ram_gib": 0}
    with pytest.raises(api.EngineError, match="No space left"):
        api.render(photo, _params(tile=32, mechanisms=spill), adapter=tiny)
    monkeypatch.undo()
    assert open_fds() == before
    r = api.render(photo, _params(tile=32, mechanisms=AUTO), adapter=tiny)   # and the next is fine
    assert r.stats["layerwise"]


def _windows_case(tiny):
    """A 256² frame whose budget fits 160 px windows (with halos) but not the frame."""
    img = (np.random.default_rng(7).random((256, 256, 3)) * 255).astype(np.uint8)
    gib = layerwise_window_bytes(unet_plan(tiny.layerwise_unet()), 160, 4, 2) / (1 << 30) * 1.01
    return img, {**AUTO, "layerwise_ram_gib": gib}


def test_frames_too_large_run_layerwise_in_large_windows_closer_to_untiled(tiny):
    img, budget = _windows_case(tiny)
    params = dict(strategy="memory", tile=32)
    full = api.render(img, _params(strategy="naive", tile=256), adapter=tiny)
    windows = api.render(img, _params(mechanisms=budget, **params), adapter=tiny)
    tiles = api.render(img, _params(mechanisms={"layerwise": "off"}, **params), adapter=tiny)
    assert windows.stats["layerwise"] and windows.stats["layerwise_storage"] == "float16"
    assert 128 <= windows.stats["layerwise_window"] < 256 and windows.stats["tiles"] == 4

    def err(r):
        return float(np.abs(r.image.astype(float) - full.image.astype(float)).mean())
    assert err(windows) < 0.7 * err(tiles), (err(windows), err(tiles))
    assert windows.stats["token_evals"] < tiles.stats["token_evals"]


def test_out_of_memory_in_windows_shrinks_the_compute_tile_not_the_windows(tiny, monkeypatch):
    img, budget = _windows_case(tiny)
    params = _params(strategy="memory", tile=32, mechanisms=budget)
    reference = api.render(img, params, adapter=tiny)
    _out_of_memory_above(monkeypatch, 16)
    r = api.render(img, params, adapter=tiny)
    assert r.stats["oom_retries"] == 1
    assert r.stats["layerwise_window"] == reference.stats["layerwise_window"]
    assert np.abs(r.image.astype(int) - reference.image.astype(int)).max() <= 1
