"""Other render boxes: the paired ones (tokens kept here, never shown to clients) and forwarding.

A job created with `params.peer` is uploaded to that box with this server's token, its progress
relayed to our clients, and its result stored here as if it had been rendered here; clients see no
difference except the stats.
"""
from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from typing import Callable, Optional

import numpy as np
from aiohttp import web

from .client import JobFailed, ServerError, WsClient, _as_bytes
from .discovery import Discovery
from .errors import ProtocolError
from .store import Job, JobState, JobStore
from .validate import DTYPES, chunk_count, json_object_body


class Peers:
    def __init__(self, db: sqlite3.Connection, discovery: Optional[Discovery], own_name: str):
        self.db = db
        self.discovery = discovery
        self.own_name = own_name

    def paired(self) -> dict[str, dict]:
        rows = self.db.execute("SELECT id, name, address, port, token FROM peers").fetchall()
        return {r[0]: {"id": r[0], "name": r[1], "address": r[2], "port": r[3], "token": r[4]}
                for r in rows}

    def is_paired(self, peer_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM peers WHERE id=?", (peer_id,)).fetchone() is not None

    def listing(self) -> list[dict]:
        """Discovered and paired boxes. A paired box is always shown at the address it was
        paired at; an advertisement of its id from anywhere else is reported as `conflict`,
        never followed (anyone on the LAN can advertise any id)."""
        found = dict(self.discovery.found) if self.discovery else {}
        paired = self.paired()
        out = []
        for peer_id, peer in found.items():
            if peer_id not in paired:
                out.append(dict(peer, paired=False, online=True))
        for peer_id, peer in paired.items():
            entry = {"id": peer_id, "name": peer["name"], "address": peer["address"],
                     "port": peer["port"], "protocol": None, "model": None, "device": None,
                     "version": None, "paired": True, "online": False}
            live = found.get(peer_id)
            if live and (live["address"], live["port"]) == (peer["address"], peer["port"]):
                entry.update({k: live[k] for k in ("name", "protocol", "model", "device",
                                                   "version")}, online=True)
            elif live:
                entry["conflict"] = {"address": live["address"], "port": live["port"]}
            out.append(entry)
        return out

    def address(self, peer_id: str) -> dict:
        """Where to reach a paired peer: the address it was paired at, whatever is advertised
        now. Its token and the user's pixels go nowhere else."""
        paired = self.paired().get(peer_id)
        if paired is None:
            raise ProtocolError("bad_params", "peer is not a paired render box")
        return paired

    async def pair(self, peer_id: str, code: object) -> dict:
        peer = self.discovery.found.get(peer_id) if self.discovery else None
        if peer is None:
            raise ProtocolError("not_found", "no render box with that id has been discovered")
        if not isinstance(code, str):
            raise ProtocolError("bad_request", "code must be a string")
        from .client import HttpClient
        url = f"http://{peer['address']}:{peer['port']}"
        try:
            async with HttpClient(url) as h:
                got = await h.pair(code, self.own_name)
        except ServerError as err:
            raise ProtocolError("unauthorized", f"the render box refused the code: "
                                                f"{err.body.get('message')}") from None
        except OSError:
            raise ProtocolError("not_found", "the render box could not be reached") from None
        self.db.execute("INSERT OR REPLACE INTO peers (id, name, address, port, token, paired) "
                        "VALUES (?,?,?,?,?,?)", (peer_id, peer["name"], peer["address"],
                                                 peer["port"], got["token"], time.time()))
        return {"id": peer_id, "paired": True}


class Forwarder:
    """Runs a job on a paired peer, in the worker's place."""

    def __init__(self, peers: Peers, store: JobStore):
        self.peers = peers
        self.store = store

    async def run(self, job: Job, cancel: threading.Event,
                  on_progress: Callable[[Job, dict], None]):
        peer = self.peers.address(job.params["peer"])
        url = f"http://{peer['address']}:{peer['port']}"
        params = {k: v for k, v in job.params.items() if k != "peer" and v is not None}
        h = job.image
        dtype = np.dtype(DTYPES[h["depth"]])
        image = np.memmap(self.store.path(job.id, "image.raw"), dtype=dtype, mode="r",
                          shape=(h["height"], h["width"], h["channels"]))
        mask = None
        if job.mask:
            mask = np.memmap(self.store.path(job.id, "mask.raw"), dtype=np.uint8, mode="r",
                             shape=(h["height"], h["width"]))
        try:
            async with WsClient(url, token=peer["token"], client="seamwise-forward/0.1") as c:
                remote = await c.submit(image, params, mask, job.icc,
                                        chunk_bytes=min(job.chunk_bytes,
                                                        c.welcome["limits"]["max_chunk_bytes"]))
                done = await self._follow(c, job, remote, cancel, on_progress)
                if done is None:
                    return JobState.CANCELLED, None
                r, s = done["result"], done["seams"]
                result_path = self.store.path(job.id, "result.raw")
                seams_path = self.store.path(job.id, "seams.raw")
                result = np.memmap(result_path, dtype=dtype, mode="w+",
                                   shape=(r["height"], r["width"], r["channels"]))
                seams = np.memmap(seams_path, dtype=np.uint8, mode="w+",
                                  shape=(s["height"], s["width"]))
                await c.fetch(remote, "result", _as_bytes(result), r["chunk_bytes"])
                await c.fetch(remote, "seams", _as_bytes(seams), s["chunk_bytes"])
                result.flush()
                seams.flush()
                del result, seams
                await c.release(remote)
        except JobFailed as exc:
            return JobState.FAILED, ("render_failed", f"the render box failed: {exc}")
        except (ServerError, OSError, ConnectionError, asyncio.TimeoutError) as exc:
            return JobState.FAILED, ("render_failed", f"forwarding to the render box failed: {exc}")
        finally:
            del image, mask
        cb = job.chunk_bytes
        result_h = {k: r[k] for k in ("width", "height", "channels", "depth", "bytes")}
        result_h.update(chunk_bytes=cb, chunks=chunk_count(r["bytes"], cb))
        seams_h = {k: s[k] for k in ("width", "height", "channels", "depth", "bytes")}
        seams_h.update(chunk_bytes=cb, chunks=chunk_count(s["bytes"], cb))
        stats = dict(done.get("stats") or {}, forwarded_to=job.params["peer"])
        return JobState.DONE, (result_h, seams_h, stats)

    async def _follow(self, c: WsClient, job: Job, remote: str, cancel: threading.Event,
                      on_progress) -> Optional[dict]:
        cancelled = False
        while True:
            if cancel.is_set() and not cancelled:
                cancelled = True
                await c.cancel(remote)
            if c.events:
                event = c.events.pop(0)
            else:
                try:
                    event = await c.recv(timeout=0.25)
                except asyncio.TimeoutError:
                    continue
            if event.get("job") != remote:
                continue
            kind = event["type"]
            if kind == "progress" and event.get("state") == "running":
                on_progress(job, {k: event.get(k) for k in
                                  ("phase", "step", "steps", "tile", "tiles", "fraction",
                                   "eta_s")})
            elif kind == "job.done":
                return event
            elif kind == "job.cancelled":
                return None
            elif kind == "job.failed":
                raise JobFailed(event)
            elif kind == "error":
                raise ServerError(event)


def new_server_id() -> str:
    return secrets.token_hex(8)


async def list_peers(request: web.Request) -> web.Response:
    peers: Peers = request.app["state"].peers
    return web.json_response({"peers": peers.listing() if peers else []})


async def pair_peer(request: web.Request) -> web.Response:
    state = request.app["state"]
    body = await json_object_body(request)
    return web.json_response(await state.peers.pair(request.match_info["id"], body.get("code")))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/peers", list_peers)
    app.router.add_post("/v1/peers/{id}/pair", pair_peer)
