"""A full data directory: a clear `disk_full` error, and nothing already accepted is lost.

Uses a real 3 MiB tmpfs (needs root to mount); without root the test is skipped with that reason.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.imageio import Picture, encode_image
from server.client import HttpClient, ServerError, WsClient

from .conftest import run, small_disk


def test_full_disk_refuses_new_jobs_and_keeps_accepted_ones(server_factory, tmp_path):
    disk = small_disk(tmp_path, "3m")
    srv = server_factory(data_dir=disk / "data")
    small = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    big = np.zeros((600, 600, 3), np.uint8)          # 1.08 MB in, as much out: does not fit

    async def go():
        async with WsClient(srv.url) as c:
            kept = await c.submit(small, {"steps": 1})
            await c.wait(kept)
            with pytest.raises(ServerError) as err:
                await c.create({"width": 600, "height": 600, "channels": 3, "depth": 8},
                               {"mode": "upscale", "scale": 2})
            assert err.value.code == "disk_full" and not err.value.body["fatal"]
            async with HttpClient(srv.url) as h:
                body = encode_image(Picture(big, None, "tiff"), "tiff")
                with pytest.raises(ServerError) as err:
                    await h.submit(body, "image/tiff", mode="upscale", scale=4)
                assert err.value.status == 507 and err.value.code == "disk_full"
                assert (await h.health())["ok"]
            status = await c.watch(kept)
            assert status["state"] == "done"
            result, _ = await c.download(status)
            return result

    assert np.array_equal(run(go()), small)
    assert not [p for p in (disk / "data" / "jobs").iterdir()
                if p.name != "" and len(list(p.iterdir())) == 0], "no half-made job folders"
