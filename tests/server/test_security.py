"""LAN mode, pairing, token revocation and the Origin check, on real server subprocesses."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import msgpack
import numpy as np
import pytest

from server.client import HttpClient, ServerError, WsClient

from .conftest import REPO, run


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout


def test_lan_mode_refuses_requests_without_a_valid_token(server_factory):
    srv = server_factory("--lan", "--host", "127.0.0.1")

    async def go():
        async with aiohttp.ClientSession() as s:
            for method, path in [("GET", "/v1/health"), ("GET", "/v1/info"),
                                 ("POST", "/v1/jobs"), ("GET", "/v1/jobs/abc"),
                                 ("GET", "/v1/peers")]:
                async with s.request(method, srv.url + path,
                                     headers={"X-Seamwise": "1"}) as r:
                    assert r.status == 401, path
                    assert (await r.json())["code"] == "unauthorized"
            async with s.get(srv.url + "/v1/health",
                             headers={"Authorization": "Bearer abc.def"}) as r:
                assert r.status == 401
            ws = await s.ws_connect(srv.url.replace("http", "ws") + "/v1/ws")
            await ws.send_bytes(msgpack.packb({"type": "hello", "protocol": 1, "token": None}))
            err = msgpack.unpackb((await ws.receive(timeout=10)).data)
            assert err["code"] == "unauthorized" and err["fatal"]
            await ws.receive(timeout=10)
            assert ws.close_code == 4401

    run(go())


def test_pairing_tokens_and_revocation(server_factory):
    srv = server_factory("--lan", "--host", "127.0.0.1")
    code = srv.pairing_code()
    assert len(code) == 6 and code.isdigit()

    async def go():
        async with HttpClient(srv.url) as h:
            with pytest.raises(ServerError) as err:
                await h.pair("000000" if code != "000000" else "111111", "laptop")
            assert err.value.status == 401
            got = await h.pair(code, "Anna's iMac")
            with pytest.raises(ServerError):          # a code works once
                await h.pair(code, "again")
            h.token = got["token"]
            assert (await h.health())["ok"]
            async with WsClient(srv.url, token=got["token"]) as c:
                r = await c.render(np.zeros((8, 8, 3), np.uint8), {"steps": 1})
                assert r.image.shape == (8, 8, 3)
            return got

    got = run(go())
    listed = cli("tokens", "--data-dir", str(srv.data_dir), "list")
    assert got["token_id"] in listed and "Anna's iMac" in listed
    assert got["token"].split(".", 1)[1] not in (srv.data_dir / "seamwise.db").read_bytes().decode(
        "latin-1")
    cli("tokens", "--data-dir", str(srv.data_dir), "revoke", got["token_id"])

    async def after_revoke():
        async with HttpClient(srv.url, token=got["token"]) as h:
            with pytest.raises(ServerError) as err:
                await h.health()
            assert err.value.status == 401
        with pytest.raises(ServerError) as err:
            async with WsClient(srv.url, token=got["token"]):
                pass
        assert err.value.code == "unauthorized"

    run(after_revoke())


def test_wrong_codes_slow_down_the_guesser_not_the_owner(server_factory):
    """Five wrong codes from one LAN host used to void the owner's code; now only that host
    waits (doubling backoff) and the right client still pairs with the printed code."""
    srv = server_factory("--lan", "--host", "127.0.0.1")
    code = cli("pair", "--data-dir", str(srv.data_dir)).rsplit(":", 1)[1].strip()

    async def pair_from(address: str, guess: str):
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as s:
            async with s.post(srv.url + "/v1/pair", json={"code": guess, "name": address}) as r:
                return r.status, await r.json()

    async def go():
        wrong = [c for c in ("123456", "234567", "345678", "456789", "567890", "678901")
                 if c != code]
        for c in wrong[:5]:
            assert (await pair_from("127.0.0.2", c))[0] == 401
        status, body = await pair_from("127.0.0.2", code)      # even the right code must wait
        assert status == 429 and body["code"] == "too_many_attempts"
        status, body = await pair_from("127.0.0.1", code)      # the owner's client is unaffected
        assert status == 200 and body["token"]
        await asyncio.sleep(1.1)                               # the guesser's first wait is 1 s
        assert (await pair_from("127.0.0.2", wrong[5]))[0] == 401
        assert (await pair_from("127.0.0.2", wrong[0]))[0] == 429   # now 2 s

    run(go())


def test_foreign_origin_is_refused(server_factory):
    srv = server_factory("--allow-origin", "https://allowed.example")

    async def go():
        async with aiohttp.ClientSession() as s:
            origin = "https://evil.example"
            async with s.get(srv.url + "/v1/health", headers={"Origin": origin}) as r:
                assert r.status == 403, origin
                assert (await r.json())["code"] == "forbidden_origin"
            async with s.post(srv.url + "/v1/jobs", data=b"x",
                              headers={"Origin": origin, "Content-Type": "image/png",
                                       "X-Seamwise": "1"}) as r:
                assert r.status == 403
                await r.read()
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(srv.url.replace("http", "ws") + "/v1/ws",
                                   headers={"Origin": origin})
            assert err.value.status == 403
            # "null" (sandboxed frames, file:// pages, a host without a web origin) is never
            # trusted: without a paired token it can neither read nor create anything
            async with s.get(srv.url + "/v1/health", headers={"Origin": "null"}) as r:
                assert r.status == 401
                assert (await r.json())["code"] == "unauthorized"
            async with s.post(srv.url + "/v1/jobs", data=b"x",
                              headers={"Origin": "null", "Content-Type": "image/png",
                                       "X-Seamwise": "1"}) as r:
                assert r.status == 401
                await r.read()
        with pytest.raises(ServerError) as err:
            async with WsClient(srv.url, origin="null"):
                pass
        assert err.value.code == "unauthorized"
        async with aiohttp.ClientSession() as s:
            # an allowed origin still needs a paired token, on loopback too
            async with s.get(srv.url + "/v1/health",
                             headers={"Origin": "https://allowed.example"}) as r:
                assert r.status == 401
                assert (await r.json())["code"] == "unauthorized"
        with pytest.raises(ServerError) as err:
            async with WsClient(srv.url, origin="https://allowed.example"):
                pass
        assert err.value.code == "unauthorized"
        async with HttpClient(srv.url) as h:
            token = (await h.pair(srv.pairing_code(), "panel"))["token"]
            h.token = token
            assert (await h.request("GET", "/v1/health",
                                    headers={"Origin": "https://allowed.example"}))["ok"]
        async with WsClient(srv.url, token=token, origin="https://allowed.example") as c:
            r = await c.render(np.zeros((8, 8, 3), np.uint8), {"steps": 1})
            assert r.image.shape == (8, 8, 3)

    run(go())


def test_null_origin_cannot_be_allowed(tmp_path):
    p = subprocess.run([sys.executable, "-m", "server", "serve", "--port", "0", "--data-dir",
                        str(tmp_path), "--allow-origin", "null"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "null" in p.stderr


def test_simple_cors_requests_cannot_create_jobs(server):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(server.url + "/v1/jobs", data=b"x",
                              headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 400
                await r.read()
            async with s.post(server.url + "/v1/pair", data="code=1",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
                assert r.status == 400
                await r.read()

    run(go())


def test_non_loopback_bind_needs_lan(tmp_path):
    p = subprocess.run([sys.executable, "-m", "server", "serve", "--host", "0.0.0.0", "--port", "0",
                        "--data-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "--lan" in p.stderr
