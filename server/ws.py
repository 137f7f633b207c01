"""One WebSocket connection on /v1/ws: binary msgpack frames (PROTOCOL.md section 6)."""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

import msgpack
from aiohttp import WSMsgType, web

from .auth import needs_token
from .config import PROTOCOL_VERSION
from .errors import ProtocolError
from .state import ServerState
from .store import Job, JobState
from .validate import chunk_count, validate_chunk_bytes, validate_image_header, \
    validate_mask_header, validate_params

log = logging.getLogger("seamwise.ws")

HELLO_TIMEOUT_S = 30.0
MAX_QUEUED_EVENTS = 256
# Frames other than download chunks (which wait for room) that may wait for a client that does
# not read; beyond this the connection is dropped. Larger than the largest legitimate frame: a
# job.status listing every missing chunk of a 200 MP float upload in 4 KiB chunks is ~4 MiB.
MAX_UNSENT_BYTES = 16 * 1024 * 1024
HEARTBEAT_S = 60.0   # WebSocket ping interval; no pong within half of it closes the connection
DOWNLOAD_STREAMS = ("result", "seams")


def pack(msg: dict) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def unpack(data: bytes) -> dict:
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception:
        raise ProtocolError("bad_request", "frame is not valid msgpack", fatal=True) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("bad_request", "frame must be a msgpack map with a type", fatal=True)
    return msg


def _read_at(f, start: int, length: int) -> bytes:
    f.seek(start)
    return f.read(length)


class Fetch:
    """A download of one stream, paced by the client's acknowledgements."""

    def __init__(self, job: Job, stream: str, start: int, header: dict):
        self.job = job
        self.stream = stream
        self.start = start
        self.header = header
        self.acked: set[int] = set()
        self.sent = start            # chunks below this index have been queued for the client
        self.changed = asyncio.Event()
        self.task: Optional[asyncio.Task] = None


class Session:
    def __init__(self, state: ServerState, ws: web.WebSocketResponse, token_required: bool,
                 transport: Optional[asyncio.BaseTransport] = None):
        self.state = state
        self.ws = ws
        self.transport = transport
        self.out: asyncio.Queue = asyncio.Queue()    # (frame, bytes counted in unsent) or None
        self.unsent = 0
        self.watching: set[str] = set()
        self.fetches: dict[tuple[str, str], Fetch] = {}
        self.token_required = token_required
        self.token: Optional[str] = None
        self.token_id: Optional[str] = None
        self.created: set[str] = set()      # jobs this connection created (tokenless limit)

    # ---- plumbing ------------------------------------------------------------------------
    def send(self, msg: dict) -> None:
        frame = pack(msg)
        if self.unsent + len(frame) > MAX_UNSENT_BYTES:
            self._drop()
            return
        self.unsent += len(frame)
        self.out.put_nowait((frame, len(frame)))

    def _drop(self) -> None:
        """The client stopped reading: hang up rather than hoard its frames. Its jobs stay, to be
        watched and fetched from a new connection."""
        if self.transport is not None and not self.transport.is_closing():
            log.warning("dropping a WebSocket client that does not read (%d bytes unsent)",
                        self.unsent)
            self.transport.abort()

    async def _sender(self) -> None:
        while True:
            item = await self.out.get()
            if item is None:
                return
            frame, counted = item
            await self.ws.send_bytes(frame)
            self.unsent -= counted

    def _deliver(self, event: dict) -> None:
        # A client that stops reading must not make the server hoard its progress events.
        if event["type"] in ("progress", "preview") and self.out.qsize() > MAX_QUEUED_EVENTS:
            return
        self.send(event)

    def watch(self, job_id: str) -> None:
        if job_id not in self.watching:
            self.watching.add(job_id)
            self.state.hub.subscribe(job_id, self._deliver)

    async def going_away(self) -> None:
        """The server is shutting down: close with 1001 so the client reconnects later."""
        await self.ws.close(code=1001, message=b"server shutting down")

    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        self.state.sessions.add(self)
        try:
            await self._hello()
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    try:
                        await self._handle(unpack(msg.data))
                    except ProtocolError as err:
                        self.send(err.body())
                        if err.fatal:
                            await self._close(err.ws_close_code, err.message)
                            break
                    except (ConnectionResetError, asyncio.CancelledError):
                        raise
                    except Exception:   # a server fault: report it, keep the connection
                        log.exception("frame handling failed")
                        self.send(ProtocolError("internal", "the server failed on this "
                                                            "message").body())
                elif msg.type == WSMsgType.TEXT:
                    self.send(ProtocolError("bad_request", "text frames are not accepted; "
                                                           "send binary msgpack").body())
                elif msg.type == WSMsgType.ERROR:
                    break
        except ProtocolError as err:
            self.send(err.body())
            await self._close(err.ws_close_code, err.message)
        except asyncio.TimeoutError:
            self.send(ProtocolError("bad_request", "no hello received", fatal=True).body())
            await self._close(4400, "no hello")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.state.sessions.discard(self)
            for job_id in self.watching:
                self.state.hub.unsubscribe(job_id, self._deliver)
            for fetch in self.fetches.values():
                if fetch.task:
                    fetch.task.cancel()
            self.out.put_nowait(None)
            try:
                await asyncio.wait_for(sender, 5.0)
            except (asyncio.TimeoutError, Exception):
                sender.cancel()

    async def _close(self, code: int, message: str) -> None:
        self.out.put_nowait(None)
        await asyncio.sleep(0)
        # let queued frames (the error) go out before the close frame
        for _ in range(100):
            if self.out.empty():
                break
            await asyncio.sleep(0.01)
        await self.ws.close(code=code, message=message[:120].encode())

    async def _hello(self) -> None:
        msg = await self.ws.receive(timeout=HELLO_TIMEOUT_S)
        if msg.type != WSMsgType.BINARY:
            raise ProtocolError("bad_request", "the first frame must be a binary hello", fatal=True)
        hello = unpack(msg.data)
        if hello["type"] != "hello":
            raise ProtocolError("bad_request", "the first frame must be hello", fatal=True)
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError("protocol_version",
                                f"this server speaks protocol {PROTOCOL_VERSION}", fatal=True)
        token = hello.get("token")
        self.token_id = self.state.auth.check(token) if token is not None else None
        if self.token_required and self.token_id is None:
            raise ProtocolError("unauthorized", "a valid token is required (pair first)",
                                fatal=True)
        if self.token_id is not None:
            self.token = token
        self.send(dict({"type": "welcome"}, **self.state.identity(),
                       limits=self.state.config.limits.public()))

    def _check_token(self) -> None:
        if self.token_id is not None and self.state.auth.check(self.token) is None:
            raise ProtocolError("unauthorized", "the token was revoked", fatal=True)

    # ---- dispatch ------------------------------------------------------------------------
    async def _handle(self, msg: dict) -> None:
        kind = msg["type"]
        handler = HANDLERS.get(kind)
        if handler is None:
            raise ProtocolError("bad_request", f"unknown message type {kind[:40]!r}")
        try:
            result = handler(self, msg)
            if asyncio.iscoroutine(result):
                await result
        except ProtocolError as err:
            if err.job is None and isinstance(msg.get("job"), str):
                err.job = msg["job"][:64]
            if err.req is None and isinstance(msg.get("req"), (str, int)):
                err.req = msg["req"]
            raise

    def on_ping(self, msg: dict) -> None:
        self.send({"type": "pong"})

    def on_create(self, msg: dict) -> None:
        self._check_token()
        req = msg.get("req")
        if req is not None and not isinstance(req, (str, int)):
            raise ProtocolError("bad_request", "req must be a string")
        limits = self.state.config.limits
        try:
            params = validate_params(msg.get("params"), self.state.engine.recommended)
            image = validate_image_header(msg.get("image"), limits)
            mask = validate_mask_header(msg.get("mask"), image)
            chunk_bytes = validate_chunk_bytes(msg.get("chunk_bytes"), limits)
        except ProtocolError as err:
            err.req = req
            raise
        job = self.state.create_job(params, image, mask, chunk_bytes, "raw", req=req,
                                    owner=self.token_id,
                                    siblings=() if self.token_id else self.created)
        self.created.add(job.id)
        self.watch(job.id)
        streams = {name: {"bytes": s.bytes, "chunks": s.chunks}
                   for name, s in job.streams.items()}
        self.send({"type": "job.accepted", "req": req, "job": job.id, "streams": streams,
                   "window": limits.window})

    async def on_chunk(self, msg: dict) -> None:
        job = self.state.store.get(msg.get("job"))
        name = msg.get("stream")
        index = msg.get("index")
        data = msg.get("data")
        if name not in ("image", "mask"):
            raise ProtocolError("bad_chunk", "upload chunks name stream image or mask", job=job.id)
        declared = job.image if name == "image" else job.mask
        if declared is None:
            raise ProtocolError("bad_chunk", "this job declared no mask", job=job.id)
        n = chunk_count(declared["bytes"], job.chunk_bytes)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ProtocolError("bad_chunk", f"chunk index must be 0..{n - 1}", job=job.id)
        if not isinstance(data, bytes):
            raise ProtocolError("bad_chunk", "chunk data must be msgpack bin", job=job.id)
        start = index * job.chunk_bytes
        expected = min(start + job.chunk_bytes, declared["bytes"]) - start
        if len(data) != expected:
            raise ProtocolError("bad_chunk", f"chunk {index} of {name} must hold {expected} "
                                             f"bytes, got {len(data)}", job=job.id)
        ack = {"type": "ack", "job": job.id, "stream": name, "index": index}
        if job.state != JobState.UPLOADING:
            if job.state in (JobState.CANCELLED, JobState.FAILED):
                raise ProtocolError("bad_chunk", f"the job was {job.state}", job=job.id)
            self.send(ack)        # a late duplicate of a chunk that is already stored
            return
        stream = job.streams[name]
        # in a thread: a write can block for long when the OS throttles dirty pages
        stored = await asyncio.to_thread(self.state.store.write_chunk, job, stream, index, data)
        self.send(ack)
        if stored and all(s.complete() for s in job.streams.values()):
            asyncio.get_running_loop().create_task(self.state.complete_upload(job))

    def on_ack(self, msg: dict) -> None:
        key = (msg.get("job"), msg.get("stream"))
        fetch = self.fetches.get(key) if all(isinstance(k, str) for k in key) else None
        index = msg.get("index")
        if fetch is None or isinstance(index, bool) or not isinstance(index, int):
            raise ProtocolError("bad_chunk", "ack for a download that is not in progress")
        if not fetch.start <= index < fetch.sent:
            return      # not a chunk this download sent: counting it would open the window
        fetch.acked.add(index)
        fetch.changed.set()

    def on_fetch(self, msg: dict) -> None:
        self._check_token()
        job = self.state.store.get(msg.get("job"))
        stream = msg.get("stream")
        if stream not in DOWNLOAD_STREAMS:
            raise ProtocolError("bad_request", "fetch stream must be result or seams", job=job.id)
        if job.state != JobState.DONE:
            raise ProtocolError("not_ready", f"the job is {job.state}", job=job.id)
        header = job.result if stream == "result" else job.result["seams"]
        start = msg.get("from", 0)
        if start is None:
            start = 0
        if isinstance(start, bool) or not isinstance(start, int) or \
                not 0 <= start <= header["chunks"]:
            raise ProtocolError("bad_chunk", f"from must be 0..{header['chunks']}", job=job.id)
        old = self.fetches.pop((job.id, stream), None)
        if old and old.task:
            old.task.cancel()
        fetch = Fetch(job, stream, start, header)
        self.fetches[(job.id, stream)] = fetch
        fetch.task = asyncio.get_running_loop().create_task(self._download(fetch))

    async def _download(self, fetch: Fetch) -> None:
        job, header = fetch.job, fetch.header
        window = self.state.config.limits.window
        path = self.state.store.path(job.id, fetch.stream + ".raw")
        total, cb = header["bytes"], header["chunk_bytes"]
        try:
            with open(path, "rb", buffering=0) as f:
                for index in range(fetch.start, header["chunks"]):
                    while index - fetch.start - len(fetch.acked) >= window:
                        fetch.changed.clear()
                        await fetch.changed.wait()
                    start = index * cb
                    length = min(cb, total - start)
                    data = await asyncio.to_thread(_read_at, f, start, length)
                    if len(data) != length:
                        raise OSError("result file is shorter than recorded")
                    await self._send_now({"type": "chunk", "job": job.id,
                                          "stream": fetch.stream, "index": index, "data": data})
                    fetch.sent = index + 1
                    del data
                while len(fetch.acked) < header["chunks"] - fetch.start:
                    fetch.changed.clear()
                    await fetch.changed.wait()
            self.send({"type": "fetch.end", "job": job.id, "stream": fetch.stream})
        except asyncio.CancelledError:
            raise
        except OSError:
            log.exception("download of %s failed", job.id)
            self.send(ProtocolError("internal", "the stored result could not be read",
                                    job=job.id).body())
        finally:
            if self.fetches.get((job.id, fetch.stream)) is fetch:
                del self.fetches[(job.id, fetch.stream)]

    async def _send_now(self, msg: dict) -> None:
        """Queue a large frame, waiting while the send queue is long (memory stays bounded)."""
        while self.out.qsize() > 2 * self.state.config.limits.window:
            await asyncio.sleep(0.001)
        self.out.put_nowait((pack(msg), 0))

    def on_release(self, msg: dict) -> None:
        self._check_token()
        job = self.state.store.get(msg.get("job"))
        self.state.release(job)
        self.send({"type": "released", "job": job.id})

    def on_watch(self, msg: dict) -> None:
        self._check_token()
        job = self.state.store.get(msg.get("job"))
        self.watch(job.id)
        self.send(self.state.status_event(job))

    def on_cancel(self, msg: dict) -> None:
        self._check_token()
        job = self.state.store.get(msg.get("job"))
        self.watch(job.id)
        if not self.state.worker.cancel(job):
            self.send(self.state.status_event(job))


HANDLERS = {
    "ping": Session.on_ping,
    "job.create": Session.on_create,
    "chunk": Session.on_chunk,
    "ack": Session.on_ack,
    "fetch": Session.on_fetch,
    "release": Session.on_release,
    "watch": Session.on_watch,
    "cancel": Session.on_cancel,
}


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    state: ServerState = request.app["state"]
    ws = web.WebSocketResponse(max_msg_size=state.config.limits.max_message_bytes,
                               compress=False, heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    await Session(state, ws, needs_token(state.config.lan, request.headers.get("Origin")),
                  request.transport).run()
    return ws
