"""Two servers on this machine: zeroconf advertisement on loopback, /v1/peers, pairing a peer
and forwarding a job to it.

Multicast works on the loopback interface here, so both servers are told to use 127.0.0.1 only
(`--discovery-interface 127.0.0.1`); nothing leaves the machine.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from server.client import HttpClient, ServerError, WsClient

from .conftest import run


def wait_for_peer(url: str, port: int, timeout: float = 20.0) -> dict:
    async def go():
        async with HttpClient(url) as h:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                for peer in (await h.peers())["peers"]:
                    if peer["port"] == port and peer.get("online", True):
                        return peer
                await asyncio.sleep(0.2)
        raise AssertionError("peer not discovered")
    return run(go())


def test_discovery_pairing_and_forwarding(server_factory):
    box = server_factory("--lan", "--host", "127.0.0.1", "--discovery-interface", "127.0.0.1",
                         "--name", "render-box", discovery=True)
    desk = server_factory("--discovery-interface", "127.0.0.1", "--name", "desk",
                          "--identity-delay", "0.1", discovery=True)
    peer = wait_for_peer(desk.url, box.port)
    assert peer["address"] == "127.0.0.1" and peer["protocol"] == 1
    assert peer["model"] == "identity" and peer["device"] == "cpu" and peer["version"]
    assert peer["paired"] is False and "render-box" in peer["name"]
    assert "token" not in peer
    image = np.random.default_rng(1).integers(0, 65536, (48, 40, 4), dtype=np.uint16)

    async def go():
        async with HttpClient(desk.url) as h:
            with pytest.raises(ServerError) as err:
                await h.pair_peer(peer["id"], "000000" if box.pairing_code() != "000000"
                                  else "111111")
            assert err.value.code == "unauthorized"
            assert (await h.pair_peer(peer["id"], box.pairing_code()))["paired"] is True
            listed = {p["id"]: p for p in (await h.peers())["peers"]}
            assert listed[peer["id"]]["paired"] is True
        async with WsClient(desk.url) as c:
            with pytest.raises(ServerError) as err:
                await c.create({"width": 4, "height": 4, "channels": 3, "depth": 8},
                               {"peer": "not-a-peer"})
            assert err.value.code == "bad_params"
            # the desk's own engine is busy for ~20 s; the forwarded job must not wait for it
            local = await c.submit(image[:8, :8], {"steps": 200})
            r = await c.render(image, {"peer": peer["id"], "steps": 3})
            status = await c.watch(local)
            assert status["state"] == "running"
            await c.cancel(local)
        return r

    r = run(go())
    assert np.array_equal(r.image, image)
    assert r.done["stats"]["forwarded_to"] == peer["id"]
    assert r.done["stats"]["engine"] == "identity"


def test_forged_advertisement_of_a_paired_id_does_not_redirect_forwarding(server_factory):
    """A LAN neighbour advertises the paired box's public id at its own address: the token and
    the pixels must still go to the box the user paired with."""
    import socket

    import msgpack
    from aiohttp import WSMsgType, web
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from server.discovery import SERVICE_TYPE

    box = server_factory("--lan", "--host", "127.0.0.1", "--discovery-interface", "127.0.0.1",
                         "--name", "render-box", discovery=True)
    desk = server_factory("--discovery-interface", "127.0.0.1", "--name", "desk",
                          discovery=True)
    peer = wait_for_peer(desk.url, box.port)
    image = np.random.default_rng(2).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    stolen: list = []

    async def impostor_ws(request):
        stolen.append(("connection", request.path))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        msg = await ws.receive(timeout=10)
        if msg.type == WSMsgType.BINARY:
            stolen.append(("hello", msgpack.unpackb(msg.data).get("token")))
        await ws.close()
        return ws

    async def go():
        async with HttpClient(desk.url) as h:
            assert (await h.pair_peer(peer["id"], box.pairing_code()))["paired"] is True
        app = web.Application()
        app.router.add_get("/v1/ws", impostor_ws)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        evil_port = site._server.sockets[0].getsockname()[1]
        zc = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=["127.0.0.1"])
        info = AsyncServiceInfo(
            SERVICE_TYPE, f"render-box ({peer['id'][:6]}).{SERVICE_TYPE}".replace(
                "render-box", "render-box-2"),
            addresses=[socket.inet_aton("127.0.0.1")], port=evil_port,
            properties={"id": peer["id"], "protocol": "1", "model": "identity",
                        "device": "cpu", "version": "0.1.0"},
            server="impostor.local.")
        await (await zc.async_register_service(info))
        try:
            async with HttpClient(desk.url) as h:     # until the desk has seen the forgery
                for _ in range(200):
                    entry = next(p for p in (await h.peers())["peers"] if p["id"] == peer["id"])
                    if entry["port"] == evil_port or \
                            (entry.get("conflict") or {}).get("port") == evil_port:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the forged advertisement never arrived")
            async with WsClient(desk.url) as c:
                try:
                    r = await c.render(image, {"peer": peer["id"], "steps": 1})
                except Exception as exc:
                    r = exc
        finally:
            await zc.async_unregister_service(info)
            await zc.async_close()
            await runner.cleanup()
        return entry, r

    entry, r = run(go())
    assert stolen == []
    assert entry["address"] == "127.0.0.1" and entry["port"] == box.port and entry["paired"]
    assert entry["conflict"]["port"] != box.port
    assert np.array_equal(r.image, image)
    assert r.done["stats"]["forwarded_to"] == peer["id"]
