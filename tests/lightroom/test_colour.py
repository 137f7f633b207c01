"""Lightroom exports a ProPhoto 16-bit TIFF with its profile embedded (Lightroom's default for
editing elsewhere): the shipped plugin uploads the file as it is, a real server with the bundled
model converts it for the model by that profile, and the photo comes back with the same bytes
of profile."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from .conftest import ServerProcess
from .lr_sdk import LightroomHost, Rendition
from .test_export import job_posts, tiff_icc, write_tiff

pytestmark = pytest.mark.timeout(300)
PARAMS = {"strength": 0.5, "steps": 2, "seed": 9}


@pytest.fixture
def real_server(tmp_path):
    server = ServerProcess(tmp_path / "server", "--engine", "real")
    server.start(timeout=120)
    yield server
    server.kill()


def _render_here(pixels: np.ndarray, **colour) -> np.ndarray:
    import torch

    from engine import api
    torch.set_num_threads(1)   # as the server runs (OMP_NUM_THREADS=1)
    return api.render(pixels, api.RenderParams(**PARAMS, strategy="memory"), **colour).image


def test_embedded_prophoto_profile_is_used_and_kept(real_server, tmp_path):
    from engine.colour import standard_profile_bytes

    icc = standard_profile_bytes("ProPhoto RGB")
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.normal(0, 1, (32, 48, 3)), axis=0)
    pixels = ((smooth - smooth.min()) / np.ptp(smooth) * 65535).astype(np.uint16)
    write_tiff(tmp_path / "a.tif", pixels, icc)

    host = LightroomHost()
    host.run_export(host.property_table({
        "seamwise_address": real_server.address, "seamwise_modelDefaults": False,
        "seamwise_strength": PARAMS["strength"], "seamwise_steps": PARAMS["steps"],
        "seamwise_seed": PARAMS["seed"], "seamwise_strategy": "memory"}),
        [Rendition(tmp_path / "a.tif")])

    assert host.records.done[1].success, host.records.done[1].message
    # the plugin posts the exported file itself (postMultipart from its path), profile included
    assert job_posts(host)[0].headers["Content-Type"].startswith("multipart/form-data")
    result = tifffile.imread(tmp_path / "a.tif")
    assert tiff_icc(tmp_path / "a.tif") == icc                # the profile, byte for byte
    managed = _render_here(pixels, icc=icc)
    unmanaged = _render_here(pixels)
    close = np.abs(result.astype(np.int64) - managed).max()
    assert close <= 2
    assert np.abs(result.astype(np.int64) - unmanaged).max() > 20 * max(1, close)
