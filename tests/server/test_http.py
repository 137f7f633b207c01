"""HTTP API: TIFF/PNG in, the same format, depth and ICC profile out."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
import pytest

from engine.imageio import Picture, decode_image, encode_image
from server.client import HttpClient, ServerError

from .conftest import run

RNG = np.random.default_rng(3)
ICC = b"\x00\x00\x01\x00fake-icc-profile" * 8
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:rights>(c) Studio</dc:rights></x:xmpmeta>'


@pytest.mark.parametrize("fmt,dtype", [("tiff", np.uint8), ("tiff", np.uint16),
                                       ("tiff", np.float32), ("png", np.uint8),
                                       ("png", np.uint16)])
def test_http_round_trip_keeps_format_depth_icc_and_metadata(server, fmt, dtype):
    if dtype == np.float32:
        px = RNG.random((40, 48, 3), dtype=np.float32)
    else:
        px = RNG.integers(0, np.iinfo(dtype).max + 1, (40, 48, 4), dtype=dtype)
    metadata = {"xmp": XMP} if fmt == "png" else {"xmp": XMP, "tiff:33432": "(c) Studio 2026"}
    body = encode_image(Picture(px, ICC, fmt, metadata), fmt)

    async def go():
        async with HttpClient(server.url) as h:
            acc = await h.submit(body, f"image/{fmt}", steps=2, seed=5)
            assert acc["state"] == "queued"
            st = await h.wait(acc["job"])
            assert st["state"] == "done" and st["progress"]["fraction"] == 1.0
            out = decode_image(await h.result(acc["job"]))
            seams = decode_image(await h.seams(acc["job"]))
            await h.delete(acc["job"])
            with pytest.raises(ServerError) as err:
                await h.status(acc["job"])
            assert err.value.status == 404
            return out, seams

    out, seams = run(go())
    assert out.format == fmt and out.icc == ICC and out.metadata == metadata
    assert out.pixels.dtype == dtype and out.pixels.tobytes() == px.tobytes()
    assert seams.pixels.shape[:2] == px.shape[:2] and seams.pixels.dtype == np.uint8


def test_http_multipart_with_mask_and_params(server):
    px = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255

    async def go():
        async with HttpClient(server.url) as h:
            form = aiohttp.FormData()
            form.add_field("image", encode_image(Picture(px, None, "png"), "png"),
                           filename="a.png", content_type="image/png")
            form.add_field("mask", encode_image(Picture(mask, None, "png"), "png"),
                           filename="m.png", content_type="image/png")
            form.add_field("params", json.dumps({"mode": "upscale", "scale": 2}),
                           content_type="application/json")
            acc = await h.request("POST", "/v1/jobs", data=form, headers={"X-Seamwise": "1"})
            await h.wait(acc["job"])
            return decode_image(await h.result(acc["job"]))

    out = run(go())
    assert out.pixels.shape == (64, 64, 3)


def test_http_errors(server_factory):
    srv = server_factory("--identity-delay", "0.2")
    png = encode_image(Picture(np.zeros((16, 16, 3), np.uint8), None, "png"), "png")

    async def go():
        async with HttpClient(srv.url) as h:
            with pytest.raises(ServerError) as err:
                await h.submit(png, "image/png", steps=500)
            assert err.value.status == 400 and err.value.code == "bad_params"
            with pytest.raises(ServerError) as err:
                await h.request("POST", "/v1/jobs", data=png,
                                headers={"Content-Type": "image/png"})     # no X-Seamwise
            assert err.value.code == "bad_request"
            acc = await h.submit(png, "image/png", steps=50)
            with pytest.raises(ServerError) as err:
                await h.result(acc["job"])
            assert err.value.status == 409 and err.value.code == "not_ready"
            deleted = await h.delete(acc["job"])
            assert deleted["job"] == acc["job"]
            st = await h.wait(acc["job"])
            assert st["state"] == "cancelled"
            with pytest.raises(ServerError) as err:
                await h.request("GET", "/v1/jobs/nope")
            assert err.value.status == 404 and err.value.code == "not_found"
            info = await h.info()
            assert info["protocol"] == 1 and info["limits"]["max_pixels"] == 200_000_000

    run(go())


def test_http_preview_and_progress_while_running(server_factory):
    srv = server_factory("--identity-delay", "0.1")
    png = encode_image(Picture(np.full((64, 64, 3), 200, np.uint8), None, "png"), "png")

    async def go():
        async with HttpClient(srv.url) as h:
            acc = await h.submit(png, "image/png", steps=30)
            with pytest.raises(ServerError):
                await h.request("GET", f"/v1/jobs/{acc['job']}/preview", expect_json=False)
            for _ in range(100):
                st = await h.status(acc["job"])
                if st["state"] == "running" and st["progress"] and st["progress"]["step"] >= 2:
                    break
                await asyncio.sleep(0.1)
            assert st["position"] == 0 and 0 < st["progress"]["fraction"] < 1
            await asyncio.sleep(0.6)
            jpeg = await h.request("GET", f"/v1/jobs/{acc['job']}/preview", expect_json=False)
            await h.delete(acc["job"])
            return jpeg

    jpeg = run(go())
    assert jpeg[:3] == b"\xff\xd8\xff"


def test_http_refuses_oversized_images_from_their_header(server):
    import struct
    import zlib
    # a PNG whose header claims 70000 x 70000 pixels: refused before any pixel is decoded
    ihdr = struct.pack(">IIBBBBB", 70000, 70000, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr +
           struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))

    async def go():
        async with HttpClient(server.url) as h:
            with pytest.raises(ServerError) as err:
                await h.submit(png, "image/png")
            return err.value

    err = run(go())
    assert err.status == 413 and err.code == "too_large"


def test_http_result_honours_range_requests(server):
    """A client that cannot hold a whole result (the Lightroom plugin) fetches it in ranges."""
    px = RNG.integers(0, 65536, (64, 80, 3), dtype=np.uint16)
    body = encode_image(Picture(px, ICC, "tiff"), "tiff")

    async def go():
        async with HttpClient(server.url) as h:
            acc = await h.submit(body, "image/tiff", steps=1)
            await h.wait(acc["job"])
            url = f"{server.url}/v1/jobs/{acc['job']}/result"
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as whole:
                    assert whole.status == 200 and whole.headers["Accept-Ranges"] == "bytes"
                    data = await whole.read()
                pieces, offset = [], 0
                while offset < len(data):
                    headers = {"Range": f"bytes={offset}-{offset + 4999}"}
                    async with session.get(url, headers=headers) as part:
                        assert part.status == 206
                        end = min(offset + 5000, len(data)) - 1
                        assert part.headers["Content-Range"] == f"bytes {offset}-{end}/{len(data)}"
                        pieces.append(await part.read())
                    offset += 5000
                async with session.get(url, headers={"Range": f"bytes={len(data)}-"}) as past:
                    assert past.status == 416
            await h.delete(acc["job"])
            return data, b"".join(pieces)

    whole, joined = run(go())
    assert joined == whole
    assert decode_image(whole).pixels.tobytes() == px.tobytes()
