"""Properties of the degradations that both training and the quality benchmark rely on."""
import numpy as np
import pytest
import skimage.data
import torch

from training import degrade


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[100:228, 150:278])  # 128x128 RGB


def test_tensor_round_trip_is_exact(photo):
    t = degrade.to_tensor(photo)
    assert t.shape == (1, 3, 128, 128) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(degrade.to_uint8(t), photo)


def test_noise_has_the_requested_strength_and_is_seeded(photo):
    flat = np.full((256, 256, 3), 128, np.uint8)
    a = degrade.add_noise(flat, 8 / 255, np.random.default_rng(1))
    b = degrade.add_noise(flat, 8 / 255, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert abs(a.astype(float).std() - 8.0) < 0.2
    assert degrade.add_noise(photo, 0.0, np.random.default_rng(1)) is photo


def test_jpeg_loses_information_and_more_at_low_quality(photo):
    q90, q30 = degrade.jpeg(photo, 90), degrade.jpeg(photo, 30)
    assert q90.shape == photo.shape and q90.dtype == np.uint8
    assert 25 < degrade.psnr(q30, photo) < degrade.psnr(q90, photo) < 60


def test_downscale_halves_and_bicubic_up_restores_size(photo):
    small = degrade.damage_x2(photo)
    assert small.shape == (64, 64, 3)
    up = degrade.bicubic_up_uint8(small, 2)
    assert up.shape == photo.shape
    # a constant picture stays constant through both resamplers
    flat = np.full((32, 48, 3), 77, np.uint8)
    assert np.array_equal(degrade.bicubic_up_uint8(degrade.downscale(flat, 2), 2), flat)


def test_bicubic_up_clips_overshoot():
    x = torch.tensor([[-1.0, 1.0] * 4] * 8).expand(1, 3, 8, 8)
    assert degrade.bicubic_up(x, 2).abs().max() <= 1.0


def test_high_freq_energy_drops_with_blur_and_upscaling(photo):
    hf = degrade.high_freq_energy(photo)
    assert degrade.high_freq_energy(degrade.gaussian_blur(photo, 1.5)) < 0.3 * hf
    assert degrade.high_freq_energy(degrade.bicubic_up_uint8(degrade.damage_x2(photo), 2)) < 0.6 * hf
    assert degrade.high_freq_energy(np.full_like(photo, 50)) == 0.0


def test_random_degradation_mixes_both_kinds_and_is_reproducible(photo):
    kinds = []
    for i in range(40):
        c1, k1 = degrade.random_degradation(photo, np.random.default_rng(i))
        c2, k2 = degrade.random_degradation(photo, np.random.default_rng(i))
        assert np.array_equal(c1, c2) and k1 == k2
        assert c1.shape == photo.shape and c1.dtype == np.uint8
        kinds.append(k1)
    assert 8 < kinds.count("x2") < 32
    # the damage is real: on average the condition is clearly worse than the clean crop
    psnrs = [degrade.psnr(degrade.random_degradation(photo, np.random.default_rng(i))[0], photo)
             for i in range(20)]
    assert np.mean(psnrs) < 35


def test_benchmark_refine_damage_matches_its_definition(photo):
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    manual = degrade.jpeg(degrade.add_noise(photo, 8 / 255, rng1), 60)
    assert np.array_equal(degrade.damage_refine(photo, rng2), manual)
    assert 26 < degrade.psnr(manual, photo) < 34


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy(); b[0, 0, 0] = 255
    assert degrade.psnr(a, a) == float("inf")
    assert degrade.psnr(a, b) == pytest.approx(10 * np.log10(48))
