"""Bounded scratch by recomputation: exact, within its budget, and doing the work it counts.

Small random-weight VAEs (SD and FLUX layouts); budgets from storing everything down to the
least any schedule needs, so that long recomputed segments (many statistics passes, halos through
upsamples and downsamples, residuals inside a segment) are exercised.
"""
from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.vae import small_vae, synthetic_latent, synthetic_photo
from engine.layerwise.plan import decoder_plan, encoder_plan
from engine.layerwise.runner import Runner, Stored
from engine.layerwise.schedule import Planner, full_work
from engine.layerwise.store import ActivationStore, RamActivation
from engine.vae.tiled import scratch_schedule, tiled_decode, tiled_encode

torch.set_num_threads(1)
TILE = 24


@pytest.fixture(scope="module", params=["sd", "flux"])
def vae(request):
    return small_vae(request.param)


def _run(vae, plan, x: torch.Tensor, schedule) -> tuple[np.ndarray, ActivationStore, int]:
    store = ActivationStore(schedule.scratch, None)
    runner = Runner(torch.device("cpu"), torch.float32, store, TILE)
    src = np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        out = runner.run(plan, Stored(RamActivation(*src.shape, src.dtype, out=src)), None, schedule)
    flops = sum(v for k, v in counter.get_flop_counts().get("Global", {}).items() if "convolution" in str(k))
    return out.act.array, store, flops


def _schedules(planner: Planner):
    full = planner.store_everything()
    seen = {full.starts: full}
    for budget in (full.scratch // 2, full.scratch // 4, planner.least_scratch()):
        s = planner.schedule(budget)
        seen.setdefault(s.starts, s)
    return list(seen.values())


@pytest.mark.parametrize("what", ["decode", "encode"])
def test_recomputed_schedules_are_exact_bounded_and_counted(vae, what):
    if what == "decode":
        plan, x = decoder_plan(vae), synthetic_latent(vae.config.latent_channels, 11, 17, seed=2)
        with torch.no_grad():
            ref = vae.decode(x).sample
    else:
        plan, x = encoder_plan(vae), synthetic_photo(88, 120, seed=2)
        with torch.no_grad():
            ref = vae.encode(x).latent_dist.parameters
    ref = ref[0].permute(1, 2, 0).numpy()
    planner = Planner(plan, x.shape[2], x.shape[3], 4, TILE)
    schedules = _schedules(planner)
    assert len(schedules) >= 3 and any(max(b - a for a, b in s.segments()) > 10 for s in schedules)
    for s in schedules:
        out, store, flops = _run(vae, plan, x, s)
        assert float(np.abs(out - ref).max()) < 1e-4, s.describe()
        # the stored activations never exceeded what the plan says, and the plan is tight
        assert store.peak_scratch == s.scratch and store.spilled_bytes == 0
        # convolution work counted from the plan is the work done (FLOPs = 2 MACs)
        assert flops == round(2 * s.work * full_work(plan, x.shape[2], x.shape[3]))
    # storing everything costs one full frame's work (less where sub-pixel upsampling applies)
    assert schedules[0].stores_everything and schedules[0].work == (1.0 if what == "encode" else
                                                                     pytest.approx(0.86, abs=0.02))
    assert all(s.scratch < schedules[0].scratch and s.work > schedules[0].work for s in schedules[1:])


def test_engine_recomputes_when_storing_would_not_fit(vae):
    z = synthetic_latent(vae.config.latent_channels, 12, 16, seed=5)
    img = synthetic_photo(96, 96, seed=5)
    full = scratch_schedule(vae, 12, 16, tile=TILE, ram_budget=1 << 30, disk_budget=0)
    assert full.stores_everything
    budget = full.scratch // 3
    tight = scratch_schedule(vae, 12, 16, tile=TILE, ram_budget=budget, disk_budget=0)
    assert not tight.stores_everything and tight.scratch <= budget
    with torch.no_grad():
        torch.testing.assert_close(tiled_decode(vae, z, tile=TILE, ram_budget=budget, disk_budget=0),
                                   vae.decode(z).sample, rtol=1e-4, atol=1e-4)
        ref = vae.encode(img).latent_dist
    dist = tiled_encode(vae, img, tile=TILE, ram_budget=budget, disk_budget=0)
    torch.testing.assert_close(dist.mean, ref.mean, rtol=1e-4, atol=1e-4)


def test_budgets_no_schedule_meets_are_refused(vae):
    with pytest.raises(OSError, match="least any needs") as info:
        scratch_schedule(vae, 12, 16, tile=TILE, ram_budget=1024, disk_budget=0)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="max_work"):
        tiled_decode(vae, torch.zeros(1, vae.config.latent_channels, 12, 16), tile=TILE,
                     ram_budget=scratch_schedule(vae, 12, 16, tile=TILE, disk_budget=0).scratch // 3,
                     disk_budget=0, max_work=1.01)


def test_ram_and_disk_each_keep_their_share(vae, tmp_path):
    """An activation larger than the RAM left is split by rows between RAM and disk, so RAM stays
    within its budget and the disk within the rest of the schedule's scratch."""
    plan, x = decoder_plan(vae), synthetic_latent(vae.config.latent_channels, 11, 17, seed=2)
    with torch.no_grad():
        ref = vae.decode(x).sample[0].permute(1, 2, 0).numpy()
    planner = Planner(plan, 11, 17, 4, TILE)
    schedule = planner.schedule(planner.store_everything().scratch // 4)
    ram = schedule.scratch // 3 + 1000  # no activation boundary falls exactly here
    store = ActivationStore(ram, str(tmp_path))
    runner = Runner(torch.device("cpu"), torch.float32, store, TILE)
    src = np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    with torch.inference_mode():
        out = runner.run(plan, Stored(RamActivation(*src.shape, src.dtype, out=src)), None, schedule).act.array
    assert float(np.abs(out - ref).max()) < 1e-4
    row = max(w * c * 4 for _, w, c in plan.shapes(11, 17).values())
    live = max(len(planner.live(a) | planner.live(b)) for a, b in schedule.segments())
    # RAM takes whole rows: each stored activation may leave under one row of it unused
    assert 0 < store.peak_disk <= schedule.scratch - ram + live * row
    assert store.peak_scratch == schedule.scratch


def test_check_room_accepts_what_only_recomputation_fits(vae):
    from engine.vae.tiled import check_room

    full = max(scratch_schedule(vae, 12, 16, tile=TILE, disk_budget=0).scratch,
               scratch_schedule(vae, 96, 128, decode=False, tile=TILE, disk_budget=0).scratch)
    check_room(vae, 96, 128, tile=TILE, ram_budget=full // 2, disk_budget=0)  # recomputes: fits
    with pytest.raises(OSError, match="least any needs"):
        check_room(vae, 96, 128, tile=TILE, ram_budget=1024, disk_budget=0)
