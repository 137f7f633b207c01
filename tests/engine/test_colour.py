"""Colour-managed model input: round trips for every standard profile and depth, the render's
conversions, and what happens with profiles the engine cannot use."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.colour import KeepsWhatItSees, delta_e_2000
from engine import api, colour
from engine.adapters.tiny import TinyAdapter
from engine.colour import lcms, profiles

RGB_SPACES = [s for s, v in profiles.SPACES.items() if v.primaries is not None]
SCALE = {np.uint8: 255, np.uint16: 65535}
SMALL_UNET = dict(sample_size=32, in_channels=6, out_channels=3, block_out_channels=(16, 32, 32),
                  down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                  up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                  layers_per_block=1, norm_num_groups=8, attention_head_dim=16)


@pytest.fixture(scope="module")
def keeps():
    torch.manual_seed(0)
    base = TinyAdapter.from_config(torch.device("cpu"), torch.float32, SMALL_UNET)
    return KeepsWhatItSees(base.denoiser, base.scheduler_config, base.native_size,
                           base.downsample_factor, base.device, base.dtype)


@pytest.fixture(scope="module")
def small_random():
    return TinyAdapter.from_config(torch.device("cpu"), torch.float32, SMALL_UNET, seed=3)


def _image(dtype, shape=(40, 48), seed=0) -> np.ndarray:
    """Every corner of the encoding cube (saturated primaries are outside sRGB for the wide
    spaces) and random colours."""
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        img = rng.random(shape + (3,), dtype=np.float32)
    else:
        img = rng.integers(0, SCALE[dtype] + 1, shape + (3,)).astype(dtype)
    top = 1.0 if dtype == np.float32 else SCALE[dtype]
    corners = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)]) * top
    img[0, :8] = corners.astype(dtype)
    return img


def _levels(a: np.ndarray, b: np.ndarray, dtype) -> float:
    """Largest difference in 16-bit levels (8-bit in 8-bit levels; float scaled to 16-bit)."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max() * (65535 if dtype == np.float32 else 1))


@pytest.mark.parametrize("linear", [False, True])
@pytest.mark.parametrize("space", RGB_SPACES)
def test_float_round_trip_of_each_standard_profile(space, linear):
    """Document → model space → document in float, without the render: LittleCMS's own error,
    out-of-gamut values included (they leave the model's range unclipped)."""
    p = colour.plan(None, profiles.display_name(space, linear), np.dtype(np.uint16))
    img = _image(np.uint16, (64, 64))
    unit = img.astype(np.float32) / 65535
    model = p.model_unit(img) if p.active else torch.from_numpy(unit).permute(2, 0, 1)[None]
    if space != profiles.SRGB and not linear:
        assert p.active and (model.min() < 0 or model.max() > 1)   # wider than sRGB: unclipped
    back = p.document_unit(model.clone()) if p.active else model
    err = (back[0].permute(1, 2, 0).numpy() - unit) * 65535
    assert np.percentile(np.abs(err), 99.9) < 0.5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("space", RGB_SPACES)
def test_pixels_the_model_keeps_come_back_exactly(keeps, space, dtype):
    """A render in each standard profile and depth, by a model that changes nothing: the
    document's pixels come back within rounding, out-of-gamut colours included."""
    img = _image(dtype)
    name = space + (profiles.LINEAR_SUFFIX if dtype == np.float32 else "")
    r = api.render(img, api.RenderParams(steps=2, strength=0.5, tile=32), adapter=keeps,
                   profile=name)
    assert r.stats["colour"]["converted"] == (space != profiles.SRGB or dtype == np.float32)
    assert r.stats["warnings"] == []
    assert r.image.dtype == img.dtype
    assert _levels(r.image, img, dtype) <= (0.05 if dtype == np.float32 else 1)   # float: float32 eps


def test_embedded_profile_bytes_are_used_like_the_name(small_random):
    img = _image(np.uint16)
    params = api.RenderParams(steps=2, strength=0.5, tile=32)
    by_name = api.render(img, params, adapter=small_random, profile="Adobe RGB (1998)")
    icc = colour.standard_profile_bytes("Adobe RGB (1998)")
    by_icc = api.render(img, params, adapter=small_random, icc=icc)
    untagged = api.render(img, params, adapter=small_random)
    assert by_icc.stats["colour"] == by_name.stats["colour"]
    assert np.array_equal(by_icc.image, by_name.image)
    assert not np.array_equal(by_icc.image, untagged.image)   # the model saw other numbers


def test_the_model_sees_srgb_numbers_whatever_the_profile(small_random):
    """The same colours as an sRGB and as a ProPhoto document: the model's input is the same
    colours, so the two renders agree once converted to one space."""
    rng = np.random.default_rng(5)
    srgb = (rng.random((40, 48, 3)) * 0.8 + 0.1).astype(np.float32)   # in both gamuts
    to_pp = lcms.FloatTransform(profiles.standard_profile(profiles.SRGB),
                                profiles.standard_profile("ProPhoto RGB"))
    prophoto = to_pp(srgb)
    q = lambda a: np.round(a * 65535).astype(np.uint16)
    params = api.RenderParams(steps=2, strength=0.5, tile=32)
    a = api.render(q(srgb), params, adapter=small_random).image
    b = api.render(q(prophoto), params, adapter=small_random, profile="ProPhoto RGB").image
    back = lcms.FloatTransform(profiles.standard_profile("ProPhoto RGB"),
                               profiles.standard_profile(profiles.SRGB))(b.astype(np.float32) / 65535)
    assert np.abs(back * 65535 - a).max() < 40          # 16-bit levels: rounding of two trips
    unmanaged = api.render(q(prophoto), params, adapter=small_random).image
    wrong = lcms.FloatTransform(profiles.standard_profile("ProPhoto RGB"),
                                profiles.standard_profile(profiles.SRGB))(
        unmanaged.astype(np.float32) / 65535)
    assert np.abs(wrong * 65535 - a).max() > 10 * np.abs(back * 65535 - a).max()


def test_outside_the_selection_stays_bit_identical_when_converted(small_random):
    img = _image(np.uint16)
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[8:32, 8:40] = 255
    r = api.render(img, api.RenderParams(steps=2, strength=0.5, tile=32), mask,
                   adapter=small_random, profile="ProPhoto RGB")
    assert r.stats["colour"]["converted"]
    assert np.array_equal(r.image[mask == 0], img[mask == 0])
    assert not np.array_equal(r.image[mask > 0], img[mask > 0])


def test_upscale_converts_too(keeps):
    img = _image(np.uint16, (24, 32))
    r = api.render(img, api.RenderParams(scale=2, steps=2, strength=0.5, tile=32), adapter=keeps,
                   profile="Display P3")
    assert r.image.shape == (48, 64, 3) and r.stats["colour"]["converted"]


@pytest.mark.parametrize("name", ["My Printer Profile", "Gray Gamma 2.2"])
def test_a_profile_the_engine_cannot_use_is_processed_as_is_with_one_warning(small_random, name):
    img = _image(np.uint8)
    params = api.RenderParams(steps=2, strength=0.5, tile=32)
    r = api.render(img, params, adapter=small_random, profile=name)
    plain = api.render(img, params, adapter=small_random)
    assert len(r.stats["warnings"]) == 1 and name in r.stats["warnings"][0]
    assert not r.stats["colour"]["converted"]
    assert np.array_equal(r.image, plain.image)


def test_an_unreadable_embedded_profile_gets_a_warning(small_random):
    r = api.render(_image(np.uint8), api.RenderParams(steps=1, strength=0.5, tile=32),
                   adapter=small_random, icc=b"not an icc profile")
    assert len(r.stats["warnings"]) == 1 and "cannot be read" in r.stats["warnings"][0]


@pytest.mark.parametrize("name,expected", [
    ("sRGB IEC61966-2.1", (profiles.SRGB, False)),
    ("Adobe RGB (1998)", ("Adobe RGB (1998)", False)),
    ("ProPhoto RGB (Linear RGB Profile)", ("ProPhoto RGB", True)),
    ("  display   p3 ", ("Display P3", False)),
    ("Linear sRGB", (profiles.SRGB, True)),
    ("Gray Gamma 1.8", ("Gray Gamma 1.8", False)),
    ("Dot Gain 20%", None),
])
def test_standard_names(name, expected):
    assert profiles.canonical(name) == expected


def test_models_declare_their_space(small_random):
    assert small_random.colour_space == profiles.SRGB
    assert colour.model_space("sRGB IEC61966-2.1 (Linear RGB Profile)") == (profiles.SRGB, True)
    with pytest.raises(colour.ColourError):
        colour.model_space("Gray Gamma 2.2")


def test_a_linear_light_model_gets_linear_numbers(keeps):
    """A model that declares linear light: an sRGB document is linearised for it, and what it
    keeps comes back as it was."""
    img = _image(np.uint16)
    linear = KeepsWhatItSees(keeps.denoiser, keeps.scheduler_config, keeps.native_size,
                             keeps.downsample_factor, keeps.device, keeps.dtype,
                             colour_space="Linear sRGB")
    r = api.render(img, api.RenderParams(steps=2, strength=0.5, tile=32), adapter=linear)
    assert r.stats["colour"] == {"document": profiles.SRGB, "converted": True,
                                 "model": profiles.SRGB + profiles.LINEAR_SUFFIX}
    assert _levels(r.image, img, np.uint16) <= 1


def test_profiles_are_built_by_littlecms_and_named():
    for space in profiles.SPACES:
        data = colour.standard_profile_bytes(space)
        assert data[36:40] == b"acsp"                      # an ICC profile
        assert lcms.Profile.from_bytes(data).description == space


def test_the_benchmarks_ciede2000_agrees_with_littlecms():
    rng = np.random.default_rng(1)
    a = np.stack([rng.uniform(0, 100, 2000), rng.uniform(-90, 90, 2000),
                  rng.uniform(-90, 90, 2000)], -1)
    b = a + rng.normal(0, 3, a.shape)
    b[:20] = a[:20]                                         # identical pairs
    b[20:40, 1:] = 0                                        # grey against colour
    assert np.allclose(delta_e_2000(a, b), lcms.delta_e_2000(a, b), atol=1e-6)


def test_without_littlecms_renders_go_on_unmanaged_with_a_warning(monkeypatch):
    def missing():
        raise lcms.ColourEngineMissing("LittleCMS 2 (liblcms2) is not installed")
    monkeypatch.setattr(lcms, "library", missing)
    p = colour.plan(None, "ProPhoto RGB", np.dtype(np.uint16))
    assert not p.active and len(p.warnings) == 1 and "LittleCMS" in p.warnings[0]
