"""Malformed and hostile frames must never crash the server or affect other clients.

SEAMWISE_FUZZ_EXAMPLES multiplies the examples of a longer run by hand (see
tests/io/test_fuzz_headers.py).
"""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import struct

import aiohttp
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .conftest import start_server

SCALE = max(1, int(os.environ.get("SEAMWISE_FUZZ_EXAMPLES", "150")) // 150)

TYPES = ["hello", "job.create", "chunk", "ack", "fetch", "release", "watch", "cancel", "ping",
         "nonsense"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.floats(allow_nan=True), st.text(max_size=20), st.binary(max_size=64))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
header = st.fixed_dictionaries({}, optional={
    "width": st.one_of(st.integers(-5, 2**40), values), "height": st.integers(-5, 2**40),
    "channels": st.integers(-1, 6), "depth": st.sampled_from([0, 8, 16, 32, 64]),
    "icc": st.one_of(st.none(), st.binary(max_size=16), st.text(max_size=4))})
frames = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda t, extra: msgpack.packb(dict(extra, type=t), use_bin_type=True),
              st.sampled_from(TYPES),
              st.fixed_dictionaries({}, optional={
                  "job": st.one_of(st.text(max_size=40), values),
                  "stream": st.sampled_from(["image", "mask", "result", "seams", "x"]),
                  "index": st.one_of(st.integers(-3, 2**40), values),
                  "data": st.one_of(st.binary(max_size=128), values),
                  "from": st.one_of(st.integers(-3, 10), values),
                  "params": st.one_of(values, st.fixed_dictionaries(
                      {}, optional={"steps": values, "scale": values, "mode": values})),
                  "image": st.one_of(header, values), "mask": values,
                  "chunk_bytes": st.one_of(st.integers(-1, 2**40), values),
                  "protocol": values, "req": values})),
    st.builds(lambda v: msgpack.packb(v, use_bin_type=True), values),
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("fuzz"))
    yield srv
    srv.stop(signal.SIGKILL)


async def _exchange(url: str, batch: list[bytes], hello_first: bool) -> None:
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(url.replace("http", "ws") + "/v1/ws")
        if hello_first:
            await ws.send_bytes(msgpack.packb({"type": "hello", "protocol": 1}))
        for frame in batch:
            try:
                await ws.send_bytes(frame)
            except ConnectionError:
                break
        # drain whatever the server answers until it goes quiet or closes
        while True:
            try:
                msg = await ws.receive(timeout=0.3)
            except asyncio.TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            answer = msgpack.unpackb(msg.data, raw=False)
            assert isinstance(answer, dict) and "type" in answer
            if answer["type"] == "error":
                assert answer["code"] != "internal", answer
        await ws.close()
        async with s.get(url + "/v1/health") as r:
            assert r.status == 200


@settings(max_examples=60 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(frames, min_size=1, max_size=6), hello_first=st.booleans())
def test_fuzzed_frames_never_crash_the_server(fuzz_server, batch, hello_first):
    asyncio.run(_exchange(fuzz_server.url, batch, hello_first))
    assert fuzz_server.alive()


@settings(max_examples=25 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.binary(max_size=512), ctype=st.sampled_from(["image/png", "image/tiff",
                                                          "multipart/form-data; boundary=x"]),
       query=st.dictionaries(st.sampled_from(["steps", "scale", "mode", "seed", "tile", "zz"]),
                             st.text(max_size=6), max_size=3))
def test_fuzzed_http_uploads_get_clear_errors(fuzz_server, body, ctype, query):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(fuzz_server.url + "/v1/jobs", data=body, params=query,
                              headers={"Content-Type": ctype, "X-Seamwise": "1"}) as r:
                assert r.status in (400, 413, 415), r.status
                assert (await r.json())["code"] in ("bad_request", "bad_params",
                                                    "unsupported_image", "too_large")
    asyncio.run(go())


def _ws_frame(opcode: int, payload: bytes, fin: bool, mask: bytes, length: int | None) -> bytes:
    """A client frame; `length` may lie about the payload."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


raw_frames = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.builds(_ws_frame, st.sampled_from([0, 1, 2, 3, 8, 9, 10, 15]), st.binary(max_size=64),
              st.booleans(), st.binary(min_size=4, max_size=4),
              st.one_of(st.none(), st.sampled_from([0, 125, 126, 65535, 2**31, 2**63 - 1]))))


@settings(max_examples=20 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames=st.lists(raw_frames, min_size=1, max_size=5))
def test_fuzzed_websocket_wire_frames_never_crash_the_server(fuzz_server, frames):
    """Bytes at the WebSocket framing layer itself: bad opcodes, lying lengths, fragments."""
    key = base64.b64encode(os.urandom(16))
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=5) as s:
        s.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 101")
        try:
            for frame in frames:
                s.sendall(frame)
            s.settimeout(0.3)
            while s.recv(65536):
                pass
        except (OSError, socket.timeout):
            pass

    async def health():
        async with aiohttp.ClientSession() as session:
            async with session.get(fuzz_server.url + "/v1/health") as r:
                assert r.status == 200
    asyncio.run(health())
    assert fuzz_server.alive()
