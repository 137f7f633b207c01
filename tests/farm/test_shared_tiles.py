"""One frame's tiles evaluated by another process's session: bit-identical to one process.

The tile runner here sends each step through pickle (what Ray's object store does) to a second,
separately loaded Session, batch group by batch group; no Ray needed to check the engine's side.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from engine import api

PARAMS = api.RenderParams(steps=2, strength=0.6, tile=32, seed=7)


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[:64, :96])


def test_a_frame_split_across_sessions_is_bit_identical(photo):
    alone = api.Session("tiny").render(photo, PARAMS)
    other = api.Session("tiny")
    calls = []

    def runner(share, canvas, work):
        share, canvas, work = (pickle.loads(pickle.dumps(o)) for o in (share, canvas, work))
        half = work.batches // 2
        calls.append(work.batches)
        # two groups, evaluated in the opposite order: only plan order matters to the fusion
        late = other.evaluate_tiles(share, canvas, work, range(half, work.batches))
        early = other.evaluate_tiles(share, canvas, work, range(half))
        return early + late

    split = api.Session("tiny").render(photo, PARAMS, tile_runner=runner)
    assert len(calls) == PARAMS.steps and min(calls) >= 2
    assert np.array_equal(split.image, alone.image)
    assert np.array_equal(split.seam_risk, alone.seam_risk)
    assert split.stats["model_calls"] == alone.stats["model_calls"]


def test_renders_whose_tiles_depend_on_each_other_stay_in_one_process():
    """Pooled statistics and the attention bank tie a step's tiles together; layerwise
    evaluation is whole-frame: none of them is handed to a tile runner."""
    from engine.denoise.shared import shareable
    from engine.mechanisms.switches import Mechanisms

    assert shareable(Mechanisms(), layerwise=False)
    assert not shareable(Mechanisms(groupnorm="exact"), layerwise=False)
    assert not shareable(Mechanisms(kv_bank=True), layerwise=False)
    assert not shareable(Mechanisms(), layerwise=True)
