"""WebSocket protocol against a real server subprocess with the identity engine."""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from server.client import JobCancelled, ServerError, WsClient, _as_bytes, header_for

from .conftest import run

RNG = np.random.default_rng(7)


def random_image(h, w, c, dtype):
    if dtype == np.float32:
        return RNG.standard_normal((h, w, c)).astype(np.float32)  # any float, NaN-free
    info = np.iinfo(dtype)
    return RNG.integers(0, int(info.max) + 1, (h, w, c), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_round_trip_is_bit_exact(server, dtype):
    image = random_image(67, 129, 4, dtype)
    mask = RNG.integers(0, 256, (67, 129), dtype=np.uint8)
    icc = bytes(range(256)) * 3

    async def go():
        async with WsClient(server.url) as c:
            assert c.welcome["protocol"] == 1
            job = await c.submit(image, {"steps": 2}, mask=mask, icc=icc, chunk_bytes=4096)
            done = await c.wait(job)
            assert done["result"]["icc"] == icc
            assert done["result"]["depth"] == image.dtype.itemsize * 8
            assert done["result"]["chunks"] >= 9
            result, seams = await c.download(done)
            await c.release(job)
            with pytest.raises(ServerError) as err:
                await c.watch(job)
            assert err.value.code == "not_found"
            return result, seams

    result, seams = run(go())
    assert result.dtype == image.dtype
    assert result.tobytes() == image.tobytes()
    assert seams.shape == image.shape[:2] and not seams.any()


def test_upscale_is_nearest_neighbour(server):
    image = random_image(20, 31, 3, np.uint16)

    async def go():
        async with WsClient(server.url) as c:
            return await c.render(image, {"mode": "upscale", "scale": 2})

    r = run(go())
    assert r.image.shape == (40, 62, 3)
    assert np.array_equal(r.image, np.repeat(np.repeat(image, 2, 0), 2, 1))


def test_chunks_out_of_order_duplicated_and_missing(server):
    image = random_image(64, 64, 3, np.uint8)   # 12288 bytes = 3 chunks of 4096
    data = _as_bytes(image)

    async def go():
        async with WsClient(server.url) as c:
            acc = await c.create(header_for(image), {"steps": 1}, chunk_bytes=4096)
            job = acc["job"]
            assert acc["streams"]["image"] == {"bytes": 12288, "chunks": 3}
            await c.upload(job, "image", data, 4096, indices=[2, 0, 2])   # 1 "lost"
            status = await c.watch(job)
            assert status["state"] == "uploading"
            assert status["missing"] == {"image": [1]}
            # a wrong-length chunk is refused and changes nothing
            await c.send({"type": "chunk", "job": job, "stream": "image", "index": 1,
                          "data": b"x" * 10})
            err = await c.expect("error")
            assert err["code"] == "bad_chunk" and not err["fatal"]
            await c.send({"type": "chunk", "job": job, "stream": "image", "index": 3,
                          "data": b"x" * 4096})
            err = await c.expect("error")
            assert err["code"] == "bad_chunk"
            await c.upload(job, "image", data, 4096, indices=[1])
            queued = await c.expect("job.queued", job=job)
            assert queued["position"] == 0
            done = await c.wait(job)
            result, _ = await c.download(done)
            # a late duplicate after the upload completed is acknowledged and ignored
            await c.upload(job, "image", data, 4096, indices=[0])
            return result

    assert np.array_equal(run(go()), image)


def test_disconnect_mid_upload_and_mid_download_then_resume(server):
    image = random_image(100, 100, 4, np.uint16)  # 80000 bytes = 20 chunks of 4096
    data = _as_bytes(image)

    async def go():
        c = WsClient(server.url)
        await c.connect()
        acc = await c.create(header_for(image), {"steps": 1}, chunk_bytes=4096)
        job = acc["job"]
        await c.upload(job, "image", data, 4096, indices=list(range(7)))
        # two more chunks sent, and the connection dropped before their acks are read
        for i in (7, 8):
            await c.send({"type": "chunk", "job": job, "stream": "image", "index": i,
                          "data": data[i * 4096:(i + 1) * 4096]})
        await c.close()

        async with WsClient(server.url) as c2:
            status = await c2.watch(job)
            missing = status["missing"]["image"]
            assert set(range(9, 20)) <= set(missing) <= set(range(7, 20))
            await c2.upload(job, "image", data, 4096, indices=missing)
            await c2.wait(job)
            out = np.zeros_like(image)
            got = await c2.fetch(job, "result", _as_bytes(out), 4096, stop_after=5)
            assert got == 5
        # the download broke off after 5 chunks: resume from the first missing one
        async with WsClient(server.url) as c3:
            status = await c3.watch(job)
            assert status["state"] == "done" and status["result"]["chunks"] == 20
            await c3.fetch(job, "result", _as_bytes(out), 4096, start=5)
            await c3.release(job)
        return out

    assert np.array_equal(run(go()), image)


def test_cancel_mid_run_frees_the_worker(server_factory):
    srv = server_factory("--identity-delay", "0.1")
    image = random_image(16, 16, 3, np.uint8)

    async def go():
        async with WsClient(srv.url) as c:
            slow = await c.submit(image, {"steps": 200})       # ~20 s
            fast = await c.submit(image, {"steps": 2})
            queued = await c.expect("job.queued", job=fast)
            assert queued["position"] == 1
            while True:
                ev = await c.expect("progress", job=slow)
                if ev["state"] == "running" and ev["step"] >= 2:
                    break
            t0 = time.monotonic()
            await c.cancel(slow)
            with pytest.raises(JobCancelled):
                await c.wait(slow)
            cancelled_after = time.monotonic() - t0
            await c.wait(fast)
            status = await c.watch(slow)
            return cancelled_after, status

    cancelled_after, status = run(go())
    assert cancelled_after < 5
    assert status["state"] == "cancelled"


def test_queue_positions_and_throttled_previews(server_factory):
    srv = server_factory("--identity-delay", "0.05")
    image = random_image(40, 40, 3, np.uint8)

    async def go():
        async with WsClient(srv.url) as c:
            first = await c.submit(image, {"steps": 200})        # ~10 s unless cancelled
            others = [await c.submit(image, {"steps": 2}) for _ in range(2)]
            positions = [(await c.expect("job.queued", job=j))["position"]
                         for j in [first, *others]]
            while True:
                ev = await c.expect("progress", job=first)
                if ev["state"] == "running":
                    break
            t0 = time.monotonic()
            while True:
                ev = await c.expect("progress", job=first)
                if ev["step"] >= 40:
                    break
            await c.cancel(first)
            with pytest.raises(JobCancelled):
                await c.wait(first)
            elapsed = time.monotonic() - t0
            for j in others:
                await c.wait(j)
            previews = [e for e in c.events if e["type"] == "preview" and e["job"] == first]
            return positions, previews, elapsed

    positions, previews, elapsed = run(go())
    assert positions == [0, 1, 2]
    assert 1 <= len(previews) <= elapsed / 0.5 + 2     # at most one per 0.5 s
    assert previews[0]["jpeg"][:3] == b"\xff\xd8\xff"
    assert max(previews[0]["width"], previews[0]["height"]) <= 512


def test_sigkill_mid_job_then_restart_loses_nothing(server_factory, tmp_path):
    data_dir = tmp_path / "durable"
    srv = server_factory("--identity-delay", "0.1", data_dir=data_dir)
    running_img = random_image(50, 60, 3, np.uint16)
    queued_img = random_image(30, 20, 4, np.uint8)
    partial_img = random_image(64, 64, 3, np.uint8)

    async def before():
        async with WsClient(srv.url) as c:
            running = await c.submit(running_img, {"steps": 100})
            queued = await c.submit(queued_img, {"steps": 1})
            acc = await c.create(header_for(partial_img), {"steps": 1}, chunk_bytes=4096)
            partial = acc["job"]
            await c.upload(partial, "image", _as_bytes(partial_img), 4096, indices=[0, 2])
            while True:
                ev = await c.expect("progress", job=running)
                if ev["state"] == "running" and ev["step"] >= 1:
                    return running, queued, partial

    running, queued, partial = run(before())
    srv.stop(signal.SIGKILL)
    srv2 = server_factory("--identity-delay", "0.001", data_dir=data_dir)

    async def after():
        async with WsClient(srv2.url) as c:
            st = await c.watch(partial)
            assert st["state"] == "uploading" and st["missing"] == {"image": [1]}
            await c.upload(partial, "image", _as_bytes(partial_img), 4096, indices=[1])
            out = []
            for job in (running, queued, partial):
                st = await c.watch(job)
                assert st["state"] in ("queued", "running", "done")
                done = st if st["state"] == "done" else await c.wait(job)
                out.append((await c.download(done))[0])
            return out

    results = run(after())
    for got, want in zip(results, (running_img, queued_img, partial_img)):
        assert np.array_equal(got, want)


def test_limits_are_checked_before_allocation(server):
    async def go():
        async with WsClient(server.url) as c:
            limits = c.welcome["limits"]
            codes = []
            for header, extra in [
                ({"width": 65535, "height": 65535, "channels": 4, "depth": 16}, {}),
                ({"width": 70000, "height": 1, "channels": 3, "depth": 8}, {}),
                ({"width": 10, "height": 10, "channels": 2, "depth": 8}, {}),
                ({"width": 10, "height": 10, "channels": 3, "depth": 12}, {}),
                ({"width": 10, "height": 10, "channels": 3, "depth": 8},
                 {"chunk_bytes": limits["max_chunk_bytes"] * 2}),
                ({"width": 10, "height": -5, "channels": 3, "depth": 8}, {}),
            ]:
                with pytest.raises(ServerError) as err:
                    await c.create(header, {}, **extra)
                codes.append(err.value.code)
            for params in ({"steps": 0}, {"strength": 2}, {"bogus": 1},
                           {"mode": "refine", "scale": 2}, {"strategy": "x"}, {"guidance": 0.5},
                           {"negative_prompt": 7}):
                with pytest.raises(ServerError) as err:
                    await c.create({"width": 8, "height": 8, "channels": 3, "depth": 8}, params)
                codes.append(err.value.code)
            await c.send({"type": "nonsense"})
            codes.append((await c.expect("error"))["code"])
            await c.send({"type": "ping"})
            await c.expect("pong")
            return codes

    assert run(go()) == ["too_large", "too_large", "unsupported_image", "unsupported_image",
                         "too_large", "bad_request", "bad_params", "bad_params", "bad_params",
                         "bad_params", "bad_params", "bad_params", "bad_params", "bad_request"]


def test_oversized_frame_closes_only_that_connection(server):
    async def go():
        async with WsClient(server.url) as other:
            big = WsClient(server.url)
            await big.connect()
            limit = big.welcome["limits"]["max_message_bytes"]
            try:
                await big.ws.send_bytes(b"\x00" * (limit + 1))
            except ConnectionError:
                pass              # the server may close before it has read the whole frame
            msg = await big.ws.receive(timeout=10)
            assert msg.type.name in ("CLOSE", "CLOSED", "ERROR")
            if msg.type.name == "CLOSE":
                assert msg.data == 1009
            await big.close()
            await other.send({"type": "ping"})
            await other.expect("pong")

    run(go())


def test_hello_rules(server):
    async def go():
        import aiohttp
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(server.url.replace("http", "ws") + "/v1/ws")
            import msgpack
            await ws.send_bytes(msgpack.packb({"type": "hello", "protocol": 2}))
            msg = await ws.receive(timeout=10)
            err = msgpack.unpackb(msg.data)
            assert err["code"] == "protocol_version" and err["fatal"]
            msg = await ws.receive(timeout=10)
            assert msg.type.name in ("CLOSE", "CLOSED") and ws.close_code == 4400
            ws = await s.ws_connect(server.url.replace("http", "ws") + "/v1/ws")
            await ws.send_str("hello")
            msg = await ws.receive(timeout=10)
            assert msgpack.unpackb(msg.data)["code"] == "bad_request"
            await ws.close()

    run(go())


def test_a_second_server_cannot_share_the_data_dir(server):
    import subprocess
    import sys
    from .conftest import REPO
    p = subprocess.run([sys.executable, "-m", "server", "serve", "--port", "0", "--engine",
                        "identity", "--no-discovery", "--data-dir", str(server.data_dir)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "another Seamwise server" in p.stderr


def test_subprotocol_is_echoed_and_versions_are_exchanged(server):
    """Clients offer Sec-WebSocket-Protocol seamwise.v1; the server echoes it. hello and welcome
    carry each side's version, and a mismatch names the side to update."""
    async def go():
        import aiohttp
        import msgpack
        url = server.url.replace("http", "ws") + "/v1/ws"
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(url, protocols=("seamwise.v1",))
            assert ws.protocol == "seamwise.v1"
            await ws.send_bytes(msgpack.packb({"type": "hello", "protocol": 1, "client": "photoshop-uxp",
                                               "version": "0.1.0", "capabilities": ["preview"]}))
            welcome = msgpack.unpackb((await ws.receive(timeout=10)).data)
            assert welcome["type"] == "welcome" and welcome["server"] and welcome["protocol"] == 1
            assert {"preview", "range", "subprotocol"} <= set(welcome["capabilities"])
            await ws.close()
            for spoken, side in ((2, "update the Seamwise server"), (0, "update the Seamwise panel or plugin")):
                ws = await s.ws_connect(url, protocols=("seamwise.v1",))
                await ws.send_bytes(msgpack.packb({"type": "hello", "protocol": spoken, "client": "photoshop-uxp"}))
                err = msgpack.unpackb((await ws.receive(timeout=10)).data)
                assert err["code"] == "protocol_version" and side in err["message"], err
                assert err["message"].count(".") >= 1 and "photoshop-uxp" in err["message"]
                await ws.close()

    run(go())
