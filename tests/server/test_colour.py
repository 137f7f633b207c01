"""The image's profile through a real server and the bundled model: by name over the WebSocket
(the Photoshop panel's way), embedded in the file over HTTP (Lightroom's way)."""
from __future__ import annotations

import numpy as np
import pytest

from server.client import HttpClient, ServerError, WsClient

from .conftest import run
from .test_real_engine import real_server  # noqa: F401  (fixture)

PARAMS = {"steps": 2, "strength": 0.5, "seed": 1}


def _photo(dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(4)
    smooth = np.cumsum(rng.normal(0, 1, (40, 56, 3)), axis=1)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)
    return (smooth * 65535).astype(dtype) if dtype == np.uint16 else smooth.astype(dtype)


def _in_process(image: np.ndarray, **colour) -> np.ndarray:
    import torch

    from engine import api
    torch.set_num_threads(1)   # as the server runs (OMP_NUM_THREADS=1)
    return api.render(image, api.RenderParams(**PARAMS, strategy="memory"), **colour).image


def _levels(a, b) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@pytest.mark.timeout(600)
def test_profile_name_over_the_websocket_is_converted_for_the_model(real_server):  # noqa: F811
    image = _photo()

    async def go():
        async with WsClient(real_server.url) as c:
            managed = await c.render(image, PARAMS, profile="ProPhoto RGB")
            custom = await c.render(image, PARAMS, profile="Studio Monitor 2026")
            return managed, custom

    managed, custom = run(go())
    assert managed.done["result"]["profile"] == "ProPhoto RGB"
    assert managed.done["result"]["icc"] is None
    assert managed.done["stats"]["colour"] == {"document": "ProPhoto RGB", "converted": True,
                                               "model": "sRGB IEC61966-2.1"}
    assert managed.done["warnings"] == []
    reference = _in_process(image, profile="ProPhoto RGB")
    unmanaged = _in_process(image)
    assert _levels(managed.image, reference) <= 2
    assert _levels(managed.image, unmanaged) > 50 * max(1.0, _levels(managed.image, reference))
    # a name the server cannot build: processed as is, one clear warning
    assert len(custom.done["warnings"]) == 1 and "Studio Monitor 2026" in custom.done["warnings"][0]
    assert not custom.done["stats"]["colour"]["converted"]
    assert _levels(custom.image, unmanaged) <= 2


@pytest.mark.timeout(600)
def test_embedded_profile_over_http_comes_back_byte_for_byte(real_server):  # noqa: F811
    from engine.colour import standard_profile_bytes
    from engine.imageio import Picture, decode_image, encode_image

    image = _photo()
    icc = standard_profile_bytes("Display P3")
    body = encode_image(Picture(image, icc, "tiff"), "tiff")

    async def go():
        async with HttpClient(real_server.url) as h:
            acc = await h.submit(body, "image/tiff", **PARAMS)
            st = await h.wait(acc["job"])
            data = await h.result(acc["job"])
            bad = await h.submit(encode_image(Picture(image, b"\0" * 200, "tiff"), "tiff"),
                                 "image/tiff", **PARAMS)
            bad_st = await h.wait(bad["job"])
            return st, data, bad_st

    st, data, bad_st = run(go())
    assert st["state"] == "done" and st["warnings"] == []
    out = decode_image(data)
    assert out.icc == icc and out.pixels.dtype == np.uint16
    assert _levels(out.pixels, _in_process(image, icc=icc)) <= 2
    assert _levels(out.pixels, _in_process(image)) > 20
    assert bad_st["state"] == "done" and len(bad_st["warnings"]) == 1
    assert "cannot be read" in bad_st["warnings"][0]


def test_a_profile_name_that_is_not_a_name_is_refused(server):
    image = _photo(np.uint8)

    async def go():
        async with WsClient(server.url) as c:
            for bad in (42, "x" * 300, "bad\nname"):
                with pytest.raises(ServerError) as err:
                    await c.submit(image, PARAMS, profile=bad)
                assert err.value.body["code"] == "bad_request"
                assert "image.profile" in err.value.body["message"]
            return await c.render(image, PARAMS, profile="ProPhoto RGB")

    done = run(go())
    assert done.done["result"]["profile"] == "ProPhoto RGB"   # echoed with the result
