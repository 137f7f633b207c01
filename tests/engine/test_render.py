"""render(): dtypes, mask exactness, alpha, determinism, validation, progress, cancel, OOM."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import api

FAST = dict(steps=2, strength=0.5, tile=32)


def _params(**kw):
    return api.RenderParams(**{**FAST, **kw})


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_outside_the_mask_is_bit_identical_and_alpha_passes_through(tiny, photo, dtype):
    rgb = photo.astype(np.float32) / 255.0
    if dtype == np.uint8:
        img = photo
    elif dtype == np.uint16:
        img = (rgb * 65535).astype(np.uint16) + 7   # keep low bits that an 8-bit path would lose
    else:
        img = rgb + np.float32(1e-4)
    alpha = np.linspace(0, 1, img.shape[0] * img.shape[1], dtype=np.float32).reshape(img.shape[:2])
    alpha = (alpha * (255 if dtype == np.uint8 else 65535 if dtype == np.uint16 else 1)).astype(dtype)
    img = np.concatenate([img, alpha[..., None]], axis=2)
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[20:60, 30:80] = 255
    mask[60:70, 30:80] = 128                          # a soft edge
    before = img.copy()
    r = api.render(img, _params(), mask=mask, adapter=tiny)
    assert np.array_equal(img, before), "the caller's array was written to"
    assert r.image.dtype == img.dtype and r.image.shape == img.shape
    outside = mask == 0
    assert np.array_equal(r.image[outside], img[outside])
    assert np.array_equal(r.image[..., 3], img[..., 3])
    assert not np.array_equal(r.image[20:60, 30:80, :3], img[20:60, 30:80, :3])
    assert r.seam_risk.shape == img.shape[:2] and r.seam_risk.dtype == np.float32
    assert float(r.seam_risk[outside].max()) == 0.0


def test_the_callers_float_rgb_array_is_never_written(tiny, photo):
    """Contiguous float32 RGB is the one input torch could share memory with; the engine scales
    its canvases in place, so it must copy first."""
    img = np.ascontiguousarray(photo.astype(np.float32) / 255.0)
    before = img.copy()
    for scale in (1, 2):
        r = api.render(img, _params(scale=scale), adapter=tiny)
        assert np.array_equal(img, before)
        assert not np.array_equal(r.image[::scale, ::scale], img)


def test_float_mask_and_upscale_shapes(tiny, photo):
    mask = np.zeros(photo.shape[:2], np.float32)
    mask[:, :40] = 1.0
    r = api.render(photo, _params(scale=2), mask=mask, adapter=tiny)
    assert r.image.shape == (photo.shape[0] * 2, photo.shape[1] * 2, 3)
    assert r.seam_risk.shape == r.image.shape[:2]
    assert 0 <= r.seam_risk.min() and r.seam_risk.max() <= 1


def test_same_seed_same_bits_and_other_seed_differs(tiny, photo):
    a = api.render(photo, _params(strategy="memory", seed=3, scheduler="euler_a"), adapter=tiny)
    b = api.render(photo, _params(strategy="memory", seed=3, scheduler="euler_a"), adapter=tiny)
    c = api.render(photo, _params(strategy="memory", seed=4, scheduler="euler_a"), adapter=tiny)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.seam_risk, b.seam_risk)
    assert not np.array_equal(a.image, c.image)


def test_selection_aware_work_scales_with_selected_area(tiny):
    img = np.full((128, 128, 3), 120, np.uint8)
    full = api.render(img, _params(strategy="memory"), adapter=tiny)
    mask = np.zeros((128, 128), np.uint8)
    mask[5:20, 70:90] = 255                         # touches the cores of one tile only
    part = api.render(img, _params(strategy="memory"), mask=mask, adapter=tiny)
    assert full.stats["tiles"] == 16 and part.stats["tiles"] == 1
    assert part.stats["token_evals"] * 8 < full.stats["token_evals"]
    empty = api.render(img, _params(strategy="memory"), mask=np.zeros((128, 128), np.uint8),
                       adapter=tiny)
    assert empty.stats["token_evals"] == 0 and np.array_equal(empty.image, img)


def test_progress_is_reported_per_tile_and_ends_at_one(tiny, photo):
    seen: list[api.Progress] = []
    api.render(photo, _params(strategy="memory"), progress=seen.append, adapter=tiny)
    phases = [p.phase for p in seen]
    assert phases[0] == "load" and "denoise" in phases and phases[-1] == "decode"
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    denoise = [p for p in seen if p.phase == "denoise"]
    assert denoise[-1].tile == denoise[-1].tiles and denoise[-1].tiles > 1
    assert {p.unit for p in denoise} == {"tile"}


def test_cancel_between_tiles_raises_cancelled(tiny, photo):
    calls = {"n": 0}

    def should_cancel():
        calls["n"] += 1
        return calls["n"] > 3
    with pytest.raises(api.Cancelled):
        api.render(photo, _params(strategy="memory"), should_cancel=should_cancel, adapter=tiny)
    assert calls["n"] == 4


def test_out_of_memory_halves_batch_then_tile_and_finishes(tiny, photo, monkeypatch):
    tiled = {"layerwise": "off"}     # batches of windows (test_layerwise covers the other path)
    reference = api.render(photo, _params(strategy="memory", mechanisms=tiled), adapter=tiny,
                           batch_size=1)
    original = type(tiny).predict_x0

    def batch_limited(self, x_t, t, alpha_bar, windows, cond):
        if x_t.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, x_t, t, alpha_bar, windows, cond)
    monkeypatch.setattr(type(tiny), "predict_x0", batch_limited)
    r = api.render(photo, _params(strategy="memory", mechanisms=tiled), adapter=tiny, batch_size=8)
    assert r.stats["oom_retries"] == 3          # 8 → 4 → 2 → 1
    assert np.abs(r.image.astype(int) - reference.image.astype(int)).max() <= 1

    monkeypatch.setattr(type(tiny), "predict_x0", _fail_large(original, 40 * 40))
    r = api.render(photo, _params(strategy="memory", tile=64, overlap=8, mechanisms=tiled),
                   adapter=tiny, batch_size=1)
    assert r.stats["tile"] == 32 and r.stats["oom_retries"] >= 1


def _fail_large(original, max_pixels):
    def predict(self, x_t, t, alpha_bar, windows, cond):
        if x_t.shape[-1] * x_t.shape[-2] > max_pixels:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, x_t, t, alpha_bar, windows, cond)
    return predict


@pytest.mark.parametrize("bad", [
    dict(image=np.zeros((8, 8), np.uint8)),
    dict(image=np.zeros((8, 8, 3), np.int32)),
    dict(params=api.RenderParams(scale=3)),
    dict(params=api.RenderParams(strategy="quilt")),
    dict(params=api.RenderParams(mechanisms={"warp": True})),
    dict(params=api.RenderParams(scheduler="plms")),
    dict(mask=np.zeros((4, 4), np.uint8)),
])
def test_bad_input_gets_a_clear_error(tiny, bad):
    image = bad.get("image", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(api.EngineError):
        api.render(image, bad.get("params", api.RenderParams(steps=1, tile=32)), mask=bad.get("mask"),
                   adapter=tiny)


def test_absurd_size_is_refused_before_allocating():
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(30000, 30000, 3),
                                          strides=(0, 0, 0))
    with pytest.raises(api.EngineError, match="MP limit"):
        api.render(big, api.RenderParams(scale=4))


def test_seam_risk_marks_where_windows_disagreed_and_only_there(tiny):
    img = (np.random.default_rng(1).random((64, 96, 3)) * 255).astype(np.uint8)
    r = api.render(img, _params(strategy="memory", tile=32, overlap=16,
                                mechanisms={"layerwise": "off"}), adapter=tiny)
    risk = r.seam_risk
    # memory: 32 px cores with 8 px halos → windows overlap only within 8 px of x = 32, 64, y = 32
    overlap = np.zeros(risk.shape, bool)
    for c in (32, 64):
        overlap[:, c - 8:c + 8] = True
    overlap[32 - 8:32 + 8, :] = True
    assert float(risk[~overlap].max()) == 0.0
    assert float(risk[overlap].mean()) > 0.01


def test_recommended_settings_come_from_the_models_json(tmp_path):
    import json

    from engine.api import GENERIC_STEPS, GENERIC_STRENGTH, recommended_settings
    weights = tmp_path / "mine.safetensors"
    spec = {"meta": {"recommended": {"refine": {"strength": 0.2, "steps": 2},
                                     "x2": {"strength": 0.3, "steps": 3}}}}
    weights.with_suffix(".json").write_text(json.dumps(spec))
    assert recommended_settings(str(weights), 1) == (0.2, 2)
    assert recommended_settings(str(weights), 4) == (0.3, 3)      # ×4 uses ×2's...
    spec["meta"]["recommended"]["x4"] = {"strength": 0.15, "steps": 1}
    weights.with_suffix(".json").write_text(json.dumps(spec))
    assert recommended_settings(str(weights), 4) == (0.15, 1)     # ...unless it has its own
    assert recommended_settings(str(weights), 2) == (0.3, 3)
    generic = (GENERIC_STRENGTH, GENERIC_STEPS)
    assert recommended_settings(str(tmp_path / "sd-folder"), 1) == generic
    weights.with_suffix(".json").write_text('{"meta": {"recommended": {"refine": {"steps": 0}}}}')
    assert recommended_settings(str(weights), 1) == generic
    weights.with_suffix(".json").write_text("not json")
    assert recommended_settings(str(weights), 1) == generic
