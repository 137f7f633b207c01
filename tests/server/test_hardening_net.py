"""Hardening against web pages, LAN neighbours and careless clients, on real server subprocesses.

Each test here states the attack it replays; docs/SECURITY.md names them per defence.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys

import aiohttp
import msgpack
import numpy as np
import pytest

from server.client import HttpClient, ServerError, WsClient

from .conftest import REPO, run

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


HEADER = {"width": 64, "height": 64, "channels": 3, "depth": 8}


def jobs_cli(data_dir, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", "jobs", "--data-dir", str(data_dir),
                           *args], cwd=REPO, capture_output=True, text=True, check=check,
                          timeout=60)


def test_abandoned_uploads_are_capped_per_client_then_fail_and_free_their_disk(server_factory,
                                                                             tmp_path):
    """64 job.creates that never upload used to answer busy to everyone for 24 h."""
    data = tmp_path / "data"
    srv = server_factory("--upload-timeout", "3", data_dir=data)

    async def go():
        async with WsClient(srv.url) as greedy, WsClient(srv.url) as other:
            cap = greedy.welcome["limits"]["max_queued_per_client"]
            assert greedy.welcome["limits"]["upload_idle_s"] == 3
            held = [(await greedy.create(HEADER, req=f"r{i}"))["job"] for i in range(cap)]
            with pytest.raises(ServerError) as err:
                await greedy.create(HEADER, req="one-too-many")
            assert err.value.code == "busy" and "this client" in err.value.body["message"]
            mine = (await other.create(HEADER, req="x"))["job"]     # others are still served
            await other.upload(mine, "image", memoryview(bytes(64 * 64 * 3)), 4 * 1024 * 1024)
            assert (await other.wait(mine))["type"] == "job.done"
            assert (data / "jobs" / held[0] / "image.raw").exists()
            failed = await greedy.expect("job.failed", job=held[0], timeout=10)
            assert failed["code"] == "upload_timeout"
            assert not (data / "jobs" / held[0] / "image.raw").exists()
            # the last job was created after the first, so its idle time runs out a little later
            deadline = asyncio.get_running_loop().time() + 10
            while (status := await greedy.watch(held[-1]))["state"] == "uploading" and \
                    asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            assert status["state"] == "failed" and status["error"]["code"] == "upload_timeout"
            await greedy.send({"type": "chunk", "job": held[0], "stream": "image", "index": 0,
                               "data": bytes(64 * 64 * 3)})
            with pytest.raises(ServerError) as err:
                await greedy.expect("ack", job=held[0], timeout=10)
            assert err.value.code == "bad_chunk"
            assert (await greedy.create(HEADER, req="again"))["job"]   # the cap is free again

    run(go())


def test_stalled_uploads_are_failed_after_a_restart_too(server_factory, tmp_path):
    data = tmp_path / "data"
    srv = server_factory(data_dir=data)

    async def create():
        async with WsClient(srv.url) as c:
            return [(await c.create(HEADER, req=f"r{i}"))["job"] for i in range(3)]

    held = run(create())
    srv.stop(signal.SIGKILL)
    srv = server_factory("--upload-timeout", "2", data_dir=data)

    async def check():
        async with WsClient(srv.url) as c:
            for _ in range(100):
                states = [(await c.watch(j))["state"] for j in held]
                if states == ["failed"] * 3:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(states)

    run(check())
    assert not any((data / "jobs" / j / "image.raw").exists() for j in held)


def test_paired_token_is_capped_across_connections(server_factory):
    srv = server_factory("--lan", "--host", "127.0.0.1")

    async def go():
        async with HttpClient(srv.url) as h:
            token = (await h.pair(srv.pairing_code(), "web"))["token"]
        async with WsClient(srv.url, token=token) as a, WsClient(srv.url, token=token) as b:
            cap = a.welcome["limits"]["max_queued_per_client"]
            for i in range(cap):
                await (a if i % 2 else b).create(HEADER, req=f"r{i}")
            with pytest.raises(ServerError) as err:
                await a.create(HEADER, req="more")
            assert err.value.code == "busy"

    run(go())


def test_owner_lists_and_cancels_any_job(server_factory, tmp_path):
    data = tmp_path / "data"
    srv = server_factory("--identity-delay", "0.2", data_dir=data)

    async def create():
        async with WsClient(srv.url) as c:
            stuck = (await c.create(HEADER, req="a"))["job"]
            running = await c.submit(np.zeros((8, 8, 3), np.uint8), {"steps": 100})
            await c.expect("progress", job=running)
            return stuck, running

    stuck, running = run(create())
    listed = jobs_cli(data, "list").stdout
    assert stuck in listed and running in listed and "uploading" in listed
    assert "this computer" in listed
    out = jobs_cli(data, "cancel", "--all").stdout
    assert stuck in out and running in out
    assert not (data / "jobs" / stuck / "image.raw").exists()

    async def after():
        async with WsClient(srv.url) as c:
            assert (await c.watch(stuck))["state"] == "cancelled"
            for _ in range(100):
                if (await c.watch(running))["state"] == "cancelled":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("running job not cancelled")
        async with aiohttp.ClientSession() as s:     # no secret, or a web page: refused
            async with s.get(srv.url + "/v1/admin/jobs") as r:
                assert r.status == 401
            secret = json.loads((data / "owner.json").read_text())["secret"]
            async with s.get(srv.url + "/v1/admin/jobs",
                             headers={"X-Seamwise-Owner": secret,
                                      "Origin": "https://evil.example"}) as r:
                assert r.status == 403

    run(after())
    assert oct((data / "owner.json").stat().st_mode & 0o777) == "0o600"
    srv.stop(signal.SIGKILL)             # even a server that could not clean up
    p = jobs_cli(data, "list", check=False)
    assert p.returncode == 1 and "no server is running" in p.stderr


def test_idle_and_half_sent_connections_time_out_and_300_fit_a_256_fd_limit(server_factory):
    """300 silent sockets made a server with macOS's default soft limit (256) unreachable."""
    def mac_default_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    srv = server_factory("--idle-timeout", "6", preexec_fn=mac_default_limit)

    async def go():
        socks = []
        for i in range(300):
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", srv.port), 2)
            except (OSError, asyncio.TimeoutError):
                continue
            if i % 2:       # half a request header, never finished
                writer.write(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append((reader, writer))
        assert len(socks) == 300
        async with HttpClient(srv.url) as h:           # still serving, before any timeout
            assert (await asyncio.wait_for(h.health(), 2))["ok"]
        closed = await asyncio.gather(*(asyncio.wait_for(r.read(), 20) for r, _ in socks))
        assert all(data == b"" for data in closed)     # the server hung up on every one
        for _, w in socks:
            w.close()

    run(go())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_drain_close_sockets_with_1001_and_jobs_resume_after_restart(server_factory,
                                                                            tmp_path, sig):
    """SIGINT never exited while a WebSocket was open; SIGTERM died at once, logging nothing."""
    data = tmp_path / "data"
    srv = server_factory("--identity-delay", "0.1", data_dir=data)
    image = np.random.default_rng(5).integers(0, 65536, (16, 16, 3), dtype=np.uint16)

    async def before():
        async with WsClient(srv.url) as c:
            running = await c.submit(image, {"steps": 20})
            queued = await c.submit(image[:8], {"steps": 1})
            uploading = (await c.create({"width": 16, "height": 16, "channels": 3,
                                         "depth": 16}, req="u", chunk_bytes=4096))["job"]
            await c.expect("progress", job=running)
            srv.proc.send_signal(sig)
            while True:
                msg = await c.ws.receive(timeout=10)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert c.ws.close_code == 1001
            return running, queued, uploading

    running, queued, uploading = run(before())
    assert srv.proc.wait(15) == 0
    log = "".join(srv.stderr_lines)
    assert f"{sig.name}: shutting down" in log and "stopped" in log
    assert not (data / "owner.json").exists()

    srv = server_factory(data_dir=data)

    async def after():
        async with WsClient(srv.url) as c:
            status = await c.watch(uploading)
            assert status["state"] == "uploading" and status["missing"]["image"] == [0]
            await c.upload(uploading, "image", memoryview(image).cast("B"), 4096)
            for job, want in ((running, image), (queued, image[:8]), (uploading, image)):
                status = await c.watch(job)
                done = status if status["state"] == "done" else await c.wait(job)
                result, _ = await c.download(dict(done, job=job))
                assert np.array_equal(result, want), job

    run(after())


def _client_frame(payload: bytes) -> bytes:
    """One masked binary WebSocket frame, as a client must send it (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    body = (np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(key, np.uint8), n))
    return head + key + body.tobytes()


def test_websocket_client_that_never_reads_is_dropped_and_its_job_kept(server):
    """Each `watch` of a big upload answers ~12 KB; a client that never reads used to grow the
    server's outgoing queue without bound."""
    async def create():
        async with WsClient(server.url) as c:
            return (await c.create({"width": 2048, "height": 2048, "channels": 4, "depth": 8},
                                   req="big", chunk_bytes=4096))["job"]

    job = run(create())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1)
    assert reply.startswith(b"HTTP/1.1 101")
    sock.sendall(_client_frame(pack({"type": "hello", "protocol": 1})))
    watch = _client_frame(pack({"type": "watch", "job": job}))
    dropped = False
    try:
        for _ in range(6000):                      # ~70 MB of answers, none of them read
            sock.sendall(watch)
    except (BrokenPipeError, ConnectionResetError):
        dropped = True
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):                  # read what was sent before the hang-up
            pass
        dropped = True
    except ConnectionResetError:
        dropped = True
    except socket.timeout:
        pass
    sock.close()
    assert dropped, "the server kept the connection of a client that does not read"
    assert any("does not read" in line for line in server.stderr_lines)

    async def later():
        async with WsClient(server.url) as c:
            status = await c.watch(job)
            assert status["state"] == "uploading" and len(status["missing"]["image"]) == 4096

    run(later())
