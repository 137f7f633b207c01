"""Render parameters as a real server receives them: text from an HTTP query, nil over the
WebSocket. Every malformed value is a 400 bad_params, never a server error; nil and "" mean the
default (PROTOCOL.md section 5)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.imageio import Picture, encode_image
from server.client import HttpClient, ServerError, WsClient

from .conftest import run

PNG = encode_image(Picture(np.zeros((16, 16, 3), np.uint8), None, "png"), "png")


@pytest.mark.parametrize("name, value", [
    ("steps", "²"),             # a digit to str.isdigit(), not to int()
    ("steps", "--5"),
    ("steps", "٣"),             # an Arabic-Indic three: int() would take it
    pytest.param("seed", "5" * 5000, id="seed-5000-digits"),   # beyond int()'s digit limit
    ("seed", "-1"),
    ("strength", "½"),
    ("strength", "nan"),
    ("tile", "1e3"),
    ("scale", "2.0"),
])
def test_malformed_numbers_over_http_are_bad_params(server, name, value):
    async def go():
        async with HttpClient(server.url) as h:
            with pytest.raises(ServerError) as err:
                await h.submit(PNG, "image/png", **{name: value})
            return err.value
    err = run(go())
    assert (err.status, err.code) == (400, "bad_params"), err.body
    assert name in err.body["message"]
    assert server.alive()


def test_empty_strings_over_http_mean_the_defaults(server):
    async def go():
        async with HttpClient(server.url) as h:
            acc = await h.submit(PNG, "image/png", mode="", seed="", strategy="", steps="",
                                 strength="", tile="", overlap="", guidance="", prompt="")
            return await h.wait(acc["job"])
    assert run(go())["state"] == "done"


def test_nil_over_the_websocket_means_the_defaults(server):
    async def go():
        async with WsClient(server.url) as c:
            job = await c.submit(np.zeros((16, 16, 3), np.uint8),
                                 {"mode": None, "seed": None, "strategy": None, "steps": None,
                                  "scale": None, "tile": None, "peer": None})
            done = await c.wait(job)
            return done
    assert run(go())["type"] == "job.done"


def test_upscale_with_nil_scale_is_x2(server):
    async def go():
        async with WsClient(server.url) as c:
            job = await c.submit(np.zeros((16, 16, 3), np.uint8), {"mode": "upscale", "scale": None})
            return await c.wait(job)
    done = run(go())
    assert (done["result"]["width"], done["result"]["height"]) == (32, 32)
