"""A small Python client for the Seamwise protocol (WebSocket and HTTP).

Used by the tests, the benchmarks and by a server that forwards a job to another render box.
It speaks exactly what docs/PROTOCOL.md describes and nothing else.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

import aiohttp
import msgpack
import numpy as np

DTYPES = {8: "<u1", 16: "<u2", 32: "<f4"}


class ServerError(Exception):
    """The server answered with an `error` frame or an HTTP error body."""

    def __init__(self, body: dict, status: Optional[int] = None):
        super().__init__(f"{body.get('code')}: {body.get('message')}")
        self.body = body
        self.code = body.get("code")
        self.status = status


class JobFailed(Exception):
    def __init__(self, event: dict):
        super().__init__(f"{event.get('code')}: {event.get('message')}")
        self.event = event
        self.code = event.get("code")


class JobCancelled(Exception):
    pass


@dataclass
class Rendered:
    job: str
    image: np.ndarray
    seams: np.ndarray
    done: dict


def header_for(image: np.ndarray, icc: Optional[bytes] = None,
               profile: Optional[str] = None) -> dict:
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16,
             np.dtype(np.float32): 32}[image.dtype.newbyteorder("=")]
    header = {"width": int(image.shape[1]), "height": int(image.shape[0]),
              "channels": int(image.shape[2]), "depth": depth, "icc": icc}
    if profile:
        header["profile"] = profile
    return header


def _as_bytes(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array)).cast("B")


class WsClient:
    """One WebSocket connection. Events that a call does not consume are kept in `events`."""

    def __init__(self, base_url: str, token: Optional[str] = None, client: str = "seamwise-py/0.1",
                 origin: Optional[str] = None, session: Optional[aiohttp.ClientSession] = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client_name = client
        self.origin = origin
        self._own_session = session is None
        self.session = session
        self.ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self.welcome: Optional[dict] = None
        self.events: list[dict] = []
        self.on_event: Optional[Callable[[dict], None]] = None

    async def __aenter__(self) -> "WsClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> dict:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        headers = {"Origin": self.origin} if self.origin else None
        url = self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "/v1/ws"
        try:
            self.ws = await self.session.ws_connect(url, max_msg_size=0, compress=0,
                                                    headers=headers, autoping=True)
            await self.send({"type": "hello", "protocol": 1, "client": self.client_name,
                             "token": self.token})
            self.welcome = await self.expect("welcome")
        except BaseException:
            await self.close()
            raise
        return self.welcome

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None

    # ---- frames --------------------------------------------------------------------------
    async def send(self, msg: dict) -> None:
        await self.ws.send_bytes(msgpack.packb(msg, use_bin_type=True))

    async def recv(self, timeout: Optional[float] = 60.0) -> dict:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            event = msgpack.unpackb(msg.data, raw=False)
            if self.on_event is not None:
                self.on_event(event)
            return event
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED):
            raise ConnectionError(f"connection closed ({self.ws.close_code})")
        raise ConnectionError(f"unexpected frame {msg.type}")

    async def expect(self, *types: str, job: Optional[str] = None,
                     timeout: Optional[float] = 60.0) -> dict:
        """Next frame of one of `types` (for `job` if given); errors for us raise ServerError."""
        for i, event in enumerate(self.events):
            if event["type"] in types and (job is None or event.get("job") == job):
                return self.events.pop(i)
        while True:
            event = await self.recv(timeout)
            if event["type"] in types and (job is None or event.get("job") == job):
                return event
            if event["type"] == "error" and (job is None or event.get("job") in (job, None)):
                raise ServerError(event)
            if event["type"] in types and (job is None or event.get("job") == job):
                return event
            self.events.append(event)

    # ---- jobs ----------------------------------------------------------------------------
    async def create(self, header: dict, params: Optional[dict] = None,
                     mask: Optional[dict] = None, chunk_bytes: Optional[int] = None,
                     req: str = "r1") -> dict:
        msg = {"type": "job.create", "req": req, "params": params or {}, "image": header,
               "mask": mask}
        if chunk_bytes is not None:
            msg["chunk_bytes"] = chunk_bytes
        await self.send(msg)
        for i, event in enumerate(self.events):
            if event["type"] == "job.accepted" and event.get("req") == req:
                return self.events.pop(i)
        while True:
            event = await self.recv()
            if event["type"] == "error" and event.get("req") == req:
                raise ServerError(event)
            if event["type"] == "job.accepted" and event.get("req") == req:
                return event
            self.events.append(event)

    async def upload(self, job: str, stream: str, data: memoryview, chunk_bytes: int,
                     indices: Optional[list[int]] = None, window: int = 4) -> None:
        """Send chunks (all, or the listed ones) keeping at most `window` unacknowledged."""
        n = max(1, -(-len(data) // chunk_bytes))
        todo = list(range(n)) if indices is None else list(indices)
        pending: set[int] = set()
        pos = 0
        while pos < len(todo) or pending:
            while pos < len(todo) and len(pending) < window:
                i = todo[pos]
                pos += 1
                await self.send({"type": "chunk", "job": job, "stream": stream, "index": i,
                                 "data": data[i * chunk_bytes:(i + 1) * chunk_bytes]})
                pending.add(i)
            ack = await self.expect("ack", job=job)
            if ack["stream"] == stream:
                pending.discard(ack["index"])

    async def submit(self, image: np.ndarray, params: Optional[dict] = None,
                     mask: Optional[np.ndarray] = None, icc: Optional[bytes] = None,
                     chunk_bytes: Optional[int] = None, profile: Optional[str] = None) -> str:
        limits = self.welcome["limits"]
        chunk_bytes = chunk_bytes or limits["max_chunk_bytes"]
        mask_h = None if mask is None else {"width": int(mask.shape[1]),
                                            "height": int(mask.shape[0])}
        accepted = await self.create(header_for(image, icc, profile), params, mask_h, chunk_bytes)
        job = accepted["job"]
        await self.upload(job, "image", _as_bytes(image), chunk_bytes,
                          window=accepted["window"])
        if mask is not None:
            await self.upload(job, "mask", _as_bytes(mask.astype(np.uint8, copy=False)),
                              chunk_bytes, window=accepted["window"])
        return job

    async def wait(self, job: str, timeout: Optional[float] = 600.0) -> dict:
        event = await self.expect("job.done", "job.failed", "job.cancelled", job=job,
                                  timeout=timeout)
        if event["type"] == "job.failed":
            raise JobFailed(event)
        if event["type"] == "job.cancelled":
            raise JobCancelled(job)
        return event

    async def fetch(self, job: str, stream: str, into: memoryview, chunk_bytes: int,
                    start: int = 0, stop_after: Optional[int] = None) -> int:
        """Download `stream` into the buffer `into`; returns the number of chunks received.

        `stop_after` stops after that many chunks without finishing (to test resuming).
        """
        await self.send({"type": "fetch", "job": job, "stream": stream, "from": start})
        received = 0
        while True:
            event = await self.expect("chunk", "fetch.end", job=job)
            if event["type"] == "fetch.end":
                if event["stream"] == stream:
                    return received
                continue
            if event["stream"] != stream:
                continue
            i = event["index"]
            data = event["data"]
            into[i * chunk_bytes:i * chunk_bytes + len(data)] = data
            received += 1
            if stop_after is not None and received >= stop_after:
                return received
            await self.send({"type": "ack", "job": job, "stream": stream, "index": i})

    async def download(self, done: dict) -> tuple[np.ndarray, np.ndarray]:
        r, s = done["result"], done["seams"]
        image = np.empty((r["height"], r["width"], r["channels"]), DTYPES[r["depth"]])
        await self.fetch(done["job"], "result", _as_bytes(image), r["chunk_bytes"])
        seams = np.empty((s["height"], s["width"]), np.uint8)
        await self.fetch(done["job"], "seams", _as_bytes(seams), s["chunk_bytes"])
        return image, seams

    async def render(self, image: np.ndarray, params: Optional[dict] = None,
                     mask: Optional[np.ndarray] = None, icc: Optional[bytes] = None,
                     release: bool = True, profile: Optional[str] = None) -> Rendered:
        job = await self.submit(image, params, mask, icc, profile=profile)
        done = await self.wait(job)
        result, seams = await self.download(done)
        if release:
            await self.release(job)
        return Rendered(job, result, seams, done)

    async def watch(self, job: str) -> dict:
        await self.send({"type": "watch", "job": job})
        return await self.expect("job.status", job=job)

    async def cancel(self, job: str) -> None:
        await self.send({"type": "cancel", "job": job})

    async def release(self, job: str) -> None:
        await self.send({"type": "release", "job": job})
        await self.expect("released", job=job)


class HttpClient:
    def __init__(self, base_url: str, token: Optional[str] = None,
                 session: Optional[aiohttp.ClientSession] = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._own_session = session is None
        self.session = session

    async def __aenter__(self) -> "HttpClient":
        if self.session is None:
            self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._own_session and self.session is not None:
            await self.session.close()

    def _headers(self, extra: Optional[dict] = None) -> dict:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def request(self, method: str, path: str, *, expect_json: bool = True,
                      **kwargs) -> Any:
        kwargs["headers"] = self._headers(kwargs.get("headers"))
        async with self.session.request(method, self.base_url + path, **kwargs) as resp:
            body = await resp.read()
            if resp.status >= 400:
                try:
                    raise ServerError(json.loads(body), resp.status)
                except ValueError:
                    raise ServerError({"code": "http", "message": body[:200].decode("latin-1")},
                                      resp.status) from None
            return json.loads(body) if expect_json else body

    async def health(self) -> dict:
        return await self.request("GET", "/v1/health")

    async def info(self) -> dict:
        return await self.request("GET", "/v1/info")

    async def submit(self, data: bytes, content_type: str, **params) -> dict:
        return await self.request("POST", "/v1/jobs", data=data,
                                  params={k: str(v) for k, v in params.items()},
                                  headers={"Content-Type": content_type, "X-Seamwise": "1"})

    async def status(self, job: str) -> dict:
        return await self.request("GET", f"/v1/jobs/{job}")

    async def wait(self, job: str, timeout: float = 600.0, poll: float = 0.1) -> dict:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            st = await self.status(job)
            if st["state"] in ("done", "failed", "cancelled"):
                return st
            if loop.time() > end:
                raise TimeoutError(f"job {job} still {st['state']}")
            await asyncio.sleep(poll)

    async def result(self, job: str) -> bytes:
        return await self.request("GET", f"/v1/jobs/{job}/result", expect_json=False)

    async def seams(self, job: str) -> bytes:
        return await self.request("GET", f"/v1/jobs/{job}/seams", expect_json=False)

    async def delete(self, job: str) -> dict:
        return await self.request("DELETE", f"/v1/jobs/{job}")

    async def pair(self, code: str, name: str) -> dict:
        return await self.request("POST", "/v1/pair", json={"code": code, "name": name})

    async def peers(self) -> dict:
        return await self.request("GET", "/v1/peers")

    async def pair_peer(self, peer_id: str, code: str) -> dict:
        return await self.request("POST", f"/v1/peers/{peer_id}/pair", json={"code": code})
