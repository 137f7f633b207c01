"""Crafted files and resource exhaustion, each against a real server subprocess on loopback.

Every test here sends what an attacker would: a small request built to cost the server far more
than its size. The server must refuse it with the protocol's JSON error, before it spends the
memory or disk, and keep serving everybody else.
"""
from __future__ import annotations

import asyncio
import io
import re
import sqlite3
import time

import aiohttp
import numpy as np
import pytest

from benchmarks import crafted
from server.client import HttpClient, ServerError, WsClient

from . import rawhttp
from .conftest import run, small_disk

MiB = 1024 * 1024
GiB = 1024 * MiB


def _post_image(url: str, body: bytes, ctype: str, **params) -> tuple[int, dict]:
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/jobs", data=body, params=params,
                              headers={"Content-Type": ctype, "X-Seamwise": "1"}) as r:
                return r.status, await r.json(content_type=None)
    return run(go())


def _post_measured(server, body: bytes, ctype: str) -> tuple[int, dict, int]:
    """Status, error body, and how far the server's RSS rose above its level before the post."""
    rawhttp.reset_peak_rss(server.proc.pid)
    before = rawhttp.current_rss(server.proc.pid)
    status, err = _post_image(server.url, body, ctype)
    return status, err, rawhttp.peak_rss(server.proc.pid) - before


def _job_files_bytes(data_dir) -> int:
    return sum(p.stat().st_blocks * 512 for p in (data_dir / "jobs").rglob("*") if p.is_file())


# ---- zlib bombs in PNG metadata ------------------------------------------------------------------

@pytest.mark.parametrize("bomb", [crafted.png16_xmp_bomb, crafted.png16_icc_bomb],
                         ids=["iTXt", "iCCP"])
def test_png_metadata_bomb_is_refused_without_inflating_it(server, bomb):
    body = bomb(256 * MiB)
    assert len(body) < 1 * MiB
    status, err, rise = _post_measured(server, body, "image/png")
    assert status == 413 and err["code"] == "too_large", err
    assert rise < 64 * MiB
    assert _job_files_bytes(server.data_dir) < 1 * MiB
    ok, _ = _post_image(server.url, crafted.png16(), "image/png")
    assert ok == 202


# ---- small bodies everywhere but the image upload ------------------------------------------------

def test_pair_refuses_a_huge_declared_body_before_reading_it(server_factory):
    srv = server_factory("--lan", "--host", "127.0.0.1")
    start = time.monotonic()
    status, _, body = rawhttp.request(
        srv.port, b"POST /v1/pair HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d" % GiB, b"{" * 4096)
    assert status == 413 and rawhttp.error_body(body)["code"] == "too_large"
    assert time.monotonic() - start < 10


def test_pair_refuses_a_huge_chunked_body_after_its_limit(server_factory):
    srv = server_factory("--lan", "--host", "127.0.0.1")
    rawhttp.reset_peak_rss(srv.proc.pid)
    before = rawhttp.current_rss(srv.proc.pid)
    chunk = b"%x\r\n%s\r\n" % (MiB, b" " * MiB)
    status, _, body = rawhttp.request(
        srv.port, b"POST /v1/pair HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked", chunk * 64)
    assert status == 413 and rawhttp.error_body(body)["code"] == "too_large"
    assert rawhttp.peak_rss(srv.proc.pid) - before < 32 * MiB


# ---- content sniffing, parameters before the body ------------------------------------------------

def test_jpeg_sent_as_png_is_refused_before_decoding(server):
    status, err, rise = _post_measured(server, crafted.jpeg(13000, 13000), "image/png")
    assert status == 415 and err["code"] == "unsupported_image", err
    assert "JPEG" in err["message"]
    assert rise < 64 * MiB


def test_png_sent_as_tiff_is_refused(server):
    status, err = _post_image(server.url, crafted.png16(), "image/tiff")
    assert status == 415 and err["code"] == "unsupported_image" and "PNG" in err["message"]


def test_job_parameters_are_checked_before_the_body_is_read(server):
    start = time.monotonic()
    status, _, body = rawhttp.request(
        server.port, b"POST /v1/jobs?steps=abc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/tiff\r\n"
                     b"X-Seamwise: 1\r\nContent-Length: %d" % GiB, b"II*\x00")
    assert status == 400 and rawhttp.error_body(body)["code"] == "bad_params"
    assert time.monotonic() - start < 10


# ---- decode memory -------------------------------------------------------------------------------

def test_tiff_strips_sharing_their_data_are_refused(server):
    body = crafted.shared_strip_tiff(8000, 8000)
    assert len(body) < 64 * 1024
    status, err, rise = _post_measured(server, body, "image/tiff")
    assert status == 415 and err["code"] == "unsupported_image", err
    assert "overlap" in err["message"]
    assert rise < 64 * MiB
    assert _job_files_bytes(server.data_dir) < 1 * MiB


def test_decoding_waits_for_its_memory_budget_and_refuses_what_can_never_fit(server_factory):
    # 24 MiB of decode memory: a 1024x1024 16-bit RGB file needs 12 MiB (pixels and one copy)
    srv = server_factory("--decode-ram-mib", "24")
    fits = crafted.tiff16(1024, 1024)

    async def go():
        async with HttpClient(srv.url) as h:
            limits = (await h.info())["limits"]
            assert limits["decode_ram_bytes"] == 24 * MiB
            jobs = await asyncio.gather(*(h.submit(fits, "image/tiff") for _ in range(4)))
            for j in jobs:
                assert (await h.wait(j["job"], timeout=120))["state"] == "done"
            with pytest.raises(ServerError) as err:
                await h.submit(crafted.tiff16(2048, 2048), "image/tiff")
            assert err.value.status == 413 and "decode" in err.value.body["message"]

    run(go())


# ---- disk reserved across accepted jobs ----------------------------------------------------------

def test_free_disk_is_reserved_across_accepted_jobs(server_factory, tmp_path):
    srv = server_factory(data_dir=small_disk(tmp_path, "64m") / "data")
    header = {"width": 1000, "height": 1000, "channels": 3, "depth": 8}   # 3 MB in, ~19 MB all told

    async def go():
        async with WsClient(srv.url) as c:
            accepted = []
            with pytest.raises(ServerError) as err:
                for i in range(20):
                    accepted.append((await c.create(header, {"mode": "upscale", "scale": 2},
                                                    req=f"r{i}"))["job"])
            assert err.value.code == "disk_full"
            assert 1 <= len(accepted) <= 3, len(accepted)
            await c.cancel(accepted[0])
            await c.expect("job.cancelled", job=accepted[0])
            again = await c.create(header, {"mode": "upscale", "scale": 2}, req="again")
            with pytest.raises(ServerError):
                await c.create(header, {"mode": "upscale", "scale": 2}, req="over")
            return again

    assert run(go())["job"]


# ---- a damaged job store -------------------------------------------------------------------------

def _finished_jobs(url: str, n: int) -> list[str]:
    async def go():
        async with WsClient(url) as c:
            jobs = [await c.submit(np.full((32, 32, 3), i, np.uint8), {"steps": 1})
                    for i in range(n)]
            for j in jobs:
                await c.wait(j)
            return jobs
    return run(go())


def test_corrupt_database_is_set_aside_and_the_server_starts_clean(server_factory, tmp_path):
    data = tmp_path / "store"
    srv = server_factory(data_dir=data)
    (job,) = _finished_jobs(srv.url, 1)
    srv.stop()
    db = data / "seamwise.db"
    with sqlite3.connect(db) as con:           # a stopped server's last writes, in the main file
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        f.write(b"this is not a database at all" * 4)
    srv = server_factory(data_dir=data)
    assert (data / "jobs" / job / "result.raw").exists(), "pixels are never deleted"
    kept = [p for p in data.glob("seamwise.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not")
    assert sum("damaged" in line for line in srv.stderr_lines) == 1
    assert "Traceback" not in "".join(srv.stderr_lines)
    _finished_jobs(srv.url, 1)


def test_a_bad_job_row_is_quarantined_and_the_others_survive(server_factory, tmp_path):
    data = tmp_path / "store"
    srv = server_factory(data_dir=data)
    good, bad, worse = _finished_jobs(srv.url, 3)
    srv.stop()
    with sqlite3.connect(data / "seamwise.db") as db:
        db.execute("UPDATE jobs SET params='{not json' WHERE id=?", (bad,))
        db.execute("UPDATE jobs SET chunk_bytes=0, image='[]' WHERE id=?", (worse,))
    srv = server_factory(data_dir=data)

    async def go():
        async with HttpClient(srv.url) as h:
            assert (await h.status(good))["state"] == "done"
            for j in (bad, worse):
                with pytest.raises(ServerError) as err:
                    await h.status(j)
                assert err.value.code == "not_found"

    run(go())
    with sqlite3.connect(data / "seamwise.db") as db:
        rows = db.execute("SELECT id FROM jobs_quarantined").fetchall()
    assert sorted(r[0] for r in rows) == sorted([bad, worse])
    assert (data / "jobs" / bad / "result.raw").exists()
    assert sum("quarantined" in line for line in srv.stderr_lines) == 1
    assert "Traceback" not in "".join(srv.stderr_lines)


# ---- the advertised limit is the one that applies; every error is the protocol's JSON ------------

def test_a_196_megapixel_png_under_max_pixels_is_accepted(server):
    from PIL import Image
    out = io.BytesIO()
    Image.new("P", (14000, 14000), 3).save(out, "PNG", compress_level=1)

    async def go():
        async with HttpClient(server.url) as h:
            assert (await h.info())["limits"]["max_pixels"] >= 14000 * 14000
            job = await h.submit(out.getvalue(), "image/png")
            await h.delete(job["job"])
    run(go())


_LEAKS = re.compile(r"0x[0-9a-fA-F]{6,}|/tmp/|/home/|/root/|<\w[\w.]* object")


@pytest.mark.parametrize("head", [
    b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000,
    b"GARBAGE\x01 / HTTP/1.1\r\nHost: 127.0.0.1",
    b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5",
    b"GET /v1/nowhere HTTP/1.1\r\nHost: 127.0.0.1",
    b"PUT /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0",
], ids=["oversize-header", "bad-request-line", "bad-length", "no-route", "bad-method"])
def test_every_error_body_is_protocol_json(server, head):
    status, headers, body = rawhttp.request(server.port, head)
    assert status >= 400
    assert headers["content-type"].startswith("application/json"), (headers, body[:200])
    err = rawhttp.error_body(body)
    assert not _LEAKS.search(err["message"]), err


@pytest.mark.parametrize("make", [
    lambda: crafted.tiff16(64, 64)[:300],
    lambda: crafted.png16()[:60],
    lambda: b"II*\x00" + b"\xff" * 200,
    lambda: crafted.shared_strip_tiff(64, 64, 8)[:-5],
], ids=["cut-tiff", "cut-png", "garbage-tiff", "cut-strip"])
def test_damaged_file_errors_name_no_paths_or_addresses(server, make):
    status, err = _post_image(server.url, make(), "image/tiff" if make()[:2] == b"II"
                              else "image/png")
    assert status in (400, 413, 415) and err["type"] == "error"
    assert not _LEAKS.search(err["message"]), err
