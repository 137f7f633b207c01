"""End to end with the real engine and the bundled model on a tiny image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.client import WsClient

from .conftest import run


def _engine_ready() -> str | None:
    import engine
    weights = Path(engine.__file__).parent / "models" / "weights" / "seamwise-tiny.safetensors"
    if not weights.exists():     # checked first: importing the engine loads torch
        return "the bundled model's weights are not in engine/models/weights yet"
    from engine import api
    if not hasattr(api, "render"):
        return "engine.api.render is not implemented yet"
    return None


@pytest.fixture
def real_server(server_factory):
    reason = _engine_ready()
    if reason:
        pytest.skip(reason)
    return server_factory(engine="real")


@pytest.mark.timeout(600)
def test_real_engine_refines_inside_the_mask_only(real_server):
    srv = real_server
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65536, (48, 64, 3), dtype=np.uint16)
    mask = np.zeros((48, 64), np.uint8)
    mask[8:40, 16:48] = 255

    async def go():
        async with WsClient(srv.url) as c:
            assert c.welcome["model"] == "seamwise-tiny"
            return await c.render(image, {"steps": 2, "strength": 0.5, "seed": 1}, mask=mask)

    r = run(go())
    assert r.image.shape == image.shape and r.image.dtype == np.uint16
    outside = mask == 0
    assert np.array_equal(r.image[outside], image[outside])
    assert not np.array_equal(r.image[~outside], image[~outside])
    assert r.seams.shape == image.shape[:2]


@pytest.mark.timeout(600)
def test_jobs_without_strength_or_steps_get_the_models_recommendation(real_server):
    """The bundled model restores in one step; a job that names no steps must not pay for eight."""
    import json

    from engine.api import recommended_settings
    from engine.imageio import Picture, encode_image
    from server.client import HttpClient

    srv = real_server
    body = encode_image(Picture(np.random.default_rng(2).integers(0, 256, (32, 40, 3), np.uint8),
                                None, "png"), "png")
    spec = json.loads((Path(__file__).parents[2] / "engine/models/weights/seamwise-tiny.json").read_text())
    rec = spec["meta"]["recommended"]

    async def go():
        async with HttpClient(srv.url) as h:
            health = await h.health()
            steps = {}
            for label, params in (("default", {}), ("x2", {"mode": "upscale"}),
                                  ("explicit", {"steps": 3, "strength": 0.4})):
                acc = await h.submit(body, "image/png", **params)
                st = await h.wait(acc["job"])
                assert st["state"] == "done", st
                steps[label] = st["progress"]["steps"]
            return health, steps

    health, steps = run(go())
    # /v1/health carries strength and steps for refine and x2 (docs/PROTOCOL.md); the JSON also
    # holds the finishing and x4's own settings, which stay inside the engine
    assert health["recommended"] == {k: {"strength": rec[k]["strength"], "steps": rec[k]["steps"]}
                                     for k in ("refine", "x2")}
    assert recommended_settings("tiny", 1) == (rec["refine"]["strength"], rec["refine"]["steps"])
    assert steps == {"default": rec["refine"]["steps"], "x2": rec["x2"]["steps"], "explicit": 3}


@pytest.mark.timeout(600)
def test_the_box_owner_chooses_and_sizes_whole_frame_evaluation(real_server, server_factory):
    """The bundled model renders in tiles by default (it restores whole frames less faithfully);
    `--layerwise auto` evaluates a frame that fits whole, unless `--layerwise-ram-gib 0` leaves
    it no room. Clients cannot choose: the wire carries no mechanisms."""
    image = np.random.default_rng(3).integers(0, 256, (32, 40, 3), np.uint8)
    whole = server_factory("--layerwise", "auto", engine="real")
    no_room = server_factory("--layerwise", "auto", "--layerwise-ram-gib", "0", engine="real")

    async def stats(url):
        async with WsClient(url) as c:
            return (await c.render(image, {"steps": 1, "strength": 0.3})).done["stats"]

    default, layerwise, limited = (run(stats(s.url)) for s in (real_server, whole, no_room))
    assert default["layerwise"] is False and default["mechanisms"]["layerwise"] == "off"
    assert layerwise["layerwise"] is True and layerwise["layerwise_storage"] == "float32"
    assert limited["layerwise"] is False and limited["mechanisms"]["layerwise_ram_gib"] == 0


def test_a_negative_layerwise_budget_is_refused_at_start(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "server", "serve", "--port", "0", "--data-dir",
                          str(tmp_path), "--engine", "identity", "--no-discovery",
                          "--layerwise-ram-gib", "-1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--layerwise-ram-gib" in out.stderr


@pytest.mark.timeout(600)
def test_real_engine_sends_live_previews(real_server):
    """The real engine fills Progress.preview: the job's WebSocket gets `preview` events with a
    small JPEG, which GET /v1/jobs/{id}/preview serves too."""
    import io

    from PIL import Image
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    previews: list[dict] = []

    async def go():
        async with WsClient(real_server.url) as c:
            c.on_event = lambda e: e.get("type") == "preview" and previews.append(e)
            return await c.render(image, {"steps": 2, "strength": 0.5, "seed": 1})

    run(go())
    assert previews, "no preview event"
    shot = Image.open(io.BytesIO(previews[0]["jpeg"]))
    assert shot.format == "JPEG" and shot.size == (300, 200)
    assert (previews[0]["width"], previews[0]["height"]) == (300, 200)
