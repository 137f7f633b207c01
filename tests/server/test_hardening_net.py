"""Hardening against web pages, LAN neighbours and careless clients, on real server subprocesses.

Each test here states the attack it replays; docs/SECURITY.md names them per defence.
"""
from __future__ import annotations

import asyncio

import aiohttp
import msgpack
import numpy as np
import pytest

from server.client import HttpClient, WsClient

from .conftest import run

pack = msgpack.packb


def test_download_acks_for_chunks_that_do_not_exist_are_ignored(server):
    """Acks for indices past the end must not open the window nor end the download early."""

    async def go():
        async with WsClient(server.url) as c:
            big = np.random.default_rng(3).integers(0, 256, (256, 256, 4), dtype=np.uint8)
            accepted = await c.create({"width": 256, "height": 256, "channels": 4, "depth": 8},
                                      {"steps": 1}, chunk_bytes=4096)
            await c.upload(accepted["job"], "image", memoryview(big).cast("B"), 4096)
            done = await c.wait(accepted["job"])
            job = done["job"]
            assert done["result"]["chunks"] == 64
            await c.send({"type": "fetch", "job": job, "stream": "result"})
            for bogus in (-1, 64, 65, 10**6, *range(100, 160)):
                await c.send({"type": "ack", "job": job, "stream": "result", "index": bogus})
            got = []
            try:
                while True:
                    event = await c.expect("chunk", "fetch.end", job=job, timeout=1.0)
                    got.append(event)
            except asyncio.TimeoutError:
                pass
            # only the window's worth of chunks, and no premature end
            assert [e["type"] for e in got] == ["chunk"] * accepted["window"]
            for event in got:
                await c.send({"type": "ack", "job": job, "stream": "result",
                              "index": event["index"]})
            out = np.empty_like(big)
            view = memoryview(out).cast("B")
            for event in got:
                view[event["index"] * 4096:(event["index"] + 1) * 4096] = event["data"]
            while True:
                event = await c.expect("chunk", "fetch.end", job=job, timeout=10)
                if event["type"] == "fetch.end":
                    break
                view[event["index"] * 4096:(event["index"] + 1) * 4096] = event["data"]
                await c.send({"type": "ack", "job": job, "stream": "result",
                              "index": event["index"]})
            assert np.array_equal(out, big)

    run(go())


def test_dns_rebinding_host_names_are_refused(server_factory):
    """A page whose name was re-pointed at 127.0.0.1 sends its own name in Host: refused."""
    local = server_factory()
    lan = server_factory("--lan", "--host", "127.0.0.1", "--allow-host", "render-box.lan")
    paths = ["/v1/info", "/v1/health", "/v1/peers", "/v1/jobs/0123456789abcdef"]

    async def status(s, url, path, host, token=None):
        headers = {"Host": host}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with s.get(url + path, headers=headers) as r:
            body = await r.json()
            return r.status, body.get("code")

    async def go():
        async with aiohttp.ClientSession() as s:
            for path in paths:
                assert await status(s, local.url, path, f"rebind.example:{local.port}") == \
                    (403, "forbidden_host"), path
            for host in (f"127.0.0.1:{local.port}", f"localhost:{local.port}", "localhost",
                         f"[::1]:{local.port}"):
                assert (await status(s, local.url, "/v1/info", host))[0] == 200, host
            for host in (f"192.168.1.20:{local.port}", "evil.localhost.example"):
                assert (await status(s, local.url, "/v1/info", host))[0] == 403, host
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(local.url.replace("http", "ws") + "/v1/ws",
                                   headers={"Host": f"rebind.example:{local.port}"})
            assert err.value.status == 403

            async with HttpClient(lan.url) as h:
                token = (await h.pair(lan.pairing_code(), "test"))["token"]
            for host in (f"render-box.lan:{lan.port}", f"192.168.1.20:{lan.port}",
                         f"127.0.0.1:{lan.port}"):
                assert (await status(s, lan.url, "/v1/info", host, token))[0] == 200, host
            assert await status(s, lan.url, "/v1/info", f"rebind.example:{lan.port}", token) == \
                (403, "forbidden_host")

    run(go())
