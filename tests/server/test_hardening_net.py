"""Hardening against web pages, LAN neighbours and careless clients, on real server subprocesses.

Each test here states the attack it replays; docs/SECURITY.md names them per defence.
"""
from __future__ import annotations

import asyncio

import msgpack
import numpy as np

from server.client import WsClient

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
