"""The seam metrics of benchmarks.seams find a seam where there is one, and only there.

A benchmark that cannot see a seam would report every strategy seamless; these build residuals
with a known step in tone or in grain along one column and check that both scores rise well
above what another draw of the same seam-free residual scores.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.seams import components, seam_score, standout_score

SIZE = 192


def render(seed: int, tone_step: float = 0.0, grain_gain: float = 1.0, at: int = 100,
           grain_ramp: float = 1.0) -> tuple:
    """A flat grey photograph and an 'output' whose residual is grain (σ 3 levels) over a slow
    tone ramp; right of column `at` the tone is shifted by `tone_step` and the grain scaled by
    `grain_gain`; `grain_ramp` scales the grain smoothly from 1 at the left to itself at the right."""
    rng = np.random.default_rng(seed)
    base = np.full((SIZE, SIZE, 3), 120.0)
    ramp = np.linspace(0.0, 4.0, SIZE)[None, :, None]
    grain = rng.normal(0.0, 3.0, (SIZE, SIZE, 1)) * np.linspace(1.0, grain_ramp, SIZE)[None, :, None]
    grain[:, at:] *= grain_gain
    residual = ramp + grain
    residual[:, at:] += tone_step
    return base + residual, base


def scores(output: np.ndarray, base: np.ndarray, reference: dict) -> dict[str, float]:
    comp = components(output, base)
    return {**{k: seam_score(comp[k], reference[k]) for k in ("tone", "grain")},
            **{f"{k}_standout": standout_score(comp[k]) for k in ("tone", "grain")}}


@pytest.fixture(scope="module")
def floor():
    reference = components(*render(seed=0))
    return reference, scores(*render(seed=1), reference)


@pytest.mark.parametrize("seam, metrics", [
    (dict(tone_step=2.0), ("tone", "tone_standout")),
    (dict(grain_gain=1.5), ("grain", "grain_standout")),
])
def test_a_step_scores_well_above_the_floor(floor, seam, metrics):
    reference, seam_free = floor
    seamed = scores(*render(seed=1, **seam), reference)
    for m in metrics:
        assert seamed[m] > 2.0 * seam_free[m], (m, seamed[m], seam_free[m])


def test_another_seam_free_draw_scores_like_the_floor(floor):
    reference, seam_free = floor
    again = scores(*render(seed=2), reference)
    for m, value in again.items():
        assert 0.7 < value / seam_free[m] < 1.4, (m, value, seam_free[m])


def test_a_texture_change_without_a_step_stands_out_only_against_the_untiled_run(floor):
    """Grain growing smoothly across the frame (as a tile's content may differ from the untiled
    model's) is no seam: the neighbouring lines agree, the untiled run's lines do not."""
    reference, seam_free = floor
    changed = scores(*render(seed=1, grain_ramp=2.0), reference)
    assert changed["grain"] > 2.0 * seam_free["grain"]
    assert changed["grain_standout"] < 1.4 * seam_free["grain_standout"]
