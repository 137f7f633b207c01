"""Everything one running server holds, shared by the WebSocket and HTTP handlers."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Iterable, Optional

from . import __version__
from .auth import Auth
from .config import PROTOCOL_VERSION, ServerConfig
from .engines import make_engine
from .errors import ProtocolError, as_protocol_error
from .discovery import Discovery
from .hub import Hub
from .peers import Forwarder, Peers, new_server_id
from .store import UNFINISHED, Job, JobState, JobStore, StoreError, open_db
from .worker import Worker, done_event, job_warnings

log = logging.getLogger("seamwise.server")

EXPIRY_SWEEP_S = 300.0


class DataDirBusy(OSError):
    pass


def lock_data_dir(data_dir):
    """Hold an exclusive lock on the data directory for the life of the process.

    Two servers on one job store would run each other's jobs; the kernel drops the lock when the
    process dies, so a crashed server never blocks its restart.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / "server.lock", "a+")
    try:
        import fcntl
    except ImportError:          # Windows: no advisory locks here; rely on the port instead
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise DataDirBusy(f"another Seamwise server is using {data_dir}") from None
    return f


class ServerState:
    def __init__(self, config: ServerConfig):
        self.config = config
        self._lock = lock_data_dir(config.data_dir)
        self.db = open_db(config.data_dir)
        self.store = JobStore(self.db, config.data_dir)
        self.auth = Auth(self.db)
        self.hub = Hub()
        self.server_id = self._server_id()
        self.name = config.name or socket.gethostname() or "seamwise"
        self.discovery: Optional[Discovery] = None
        self.peers = Peers(self.db, None, self.name)
        self.engine = self._engine(config)
        self.worker = Worker(self.store, self.engine, self.hub, Forwarder(self.peers, self.store))
        self._sweeper: Optional[asyncio.Task] = None
        self.port: Optional[int] = None
        self._flushing: set[str] = set()
        self.sessions: set = set()          # open WebSocket sessions (ws.Session)
        self.model_error: Optional[str] = None   # why the model did not load (/v1/info)

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for job in self.store.in_order((JobState.UPLOADING,)):
            # every chunk arrived but the server stopped before queueing the job
            if job.streams and all(st.complete() for st in job.streams.values()):
                loop.create_task(self.complete_upload(job))
        self.worker.start()
        self.worker.wake()
        for job in self.store.in_order((JobState.QUEUED,)):
            if job.params.get("peer"):
                self.worker.submit(job)
        if hasattr(self.engine, "warm_up"):
            loop.run_in_executor(None, self._warm_up)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_expired())

    def _engine(self, config: ServerConfig):
        """This box's engine, or with --cluster the Ray cluster's actors (Ray loads only then);
        a box other than this one runs work only with the token it gave this server."""
        if not config.cluster:
            return make_engine(config.engine, config.model, config.identity_delay,
                               config.layerwise, config.layerwise_ram_gib)
        from .farm.cluster import parse_cluster
        from .farm.engine import ClusterEngine

        engine = {"kind": config.engine, "model": config.model,
                  "identity_delay": config.identity_delay, "layerwise": config.layerwise,
                  "layerwise_ram_gib": config.layerwise_ram_gib}
        return ClusterEngine(parse_cluster(config.cluster, config.actors), engine,
                             config.split_mp,
                             lambda box: (self.peers.paired().get(box) or {}).get("token"))

    def _server_id(self) -> str:
        row = self.db.execute("SELECT value FROM settings WHERE key='server_id'").fetchone()
        if row:
            return row[0]
        server_id = new_server_id()
        self.db.execute("INSERT INTO settings (key, value) VALUES ('server_id', ?)", (server_id,))
        return server_id

    def _warm_up(self) -> None:
        try:
            self.engine.warm_up()
            log.info("model %s loaded on %s", self.engine.model_name, self.engine.device)
        except Exception as exc:       # the first job will report it as render_failed
            self.model_error = str(exc)
            log.warning("model not loaded: %s", exc)

    async def after_listen(self, port: int) -> None:
        """Start what needs the bound port: LAN discovery (advertised only in LAN mode)."""
        self.port = port
        if not self.config.discovery:
            return
        txt = {"protocol": str(PROTOCOL_VERSION), "model": self.engine.model_name,
               "device": self.engine.device, "version": __version__}
        discovery = Discovery(self.server_id, self.name, txt, self.config.discovery_interfaces)
        try:
            await discovery.start(port if self.config.lan else None, self.config.host)
        except OSError as exc:
            log.warning("LAN discovery is unavailable: %s", exc)
            return
        self.discovery = discovery
        self.peers.discovery = discovery

    async def drain(self, timeout: float) -> bool:
        """Shutdown on a signal: the render reaches a safe point and goes back to the queue, and
        every WebSocket is closed with 1001 (going away), all within `timeout`. True when the
        render thread stopped in time."""
        sessions = [s.going_away() for s in list(self.sessions)]
        stopped, _ = await asyncio.gather(
            self.worker.drain(timeout),
            asyncio.wait_for(asyncio.gather(*sessions, return_exceptions=True), timeout),
            return_exceptions=True)
        return stopped is True

    async def stop(self) -> None:
        if self.discovery is not None:
            await self.discovery.stop()
        if self._sweeper:
            self._sweeper.cancel()
        await self.worker.stop()
        if hasattr(self.engine, "close"):
            self.engine.close()
        self.db.close()

    async def _sweep_expired(self) -> None:
        limits = self.config.limits
        # often enough that a stalled upload is failed within a quarter of its timeout
        interval = min(EXPIRY_SWEEP_S, max(0.5, limits.upload_idle_s / 4))
        while True:
            for job in self.store.stalled(limits.upload_idle_s):
                self.fail_stalled_upload(job)
            for job in self.store.expired(limits.retention_s):
                log.info("job %s expired", job.id)
                self.store.delete(job)
                self.hub.forget(job.id)
            await asyncio.sleep(interval)

    def fail_stalled_upload(self, job: Job) -> None:
        """An abandoned upload must not hold a queue place or its disk until it expires."""
        if job.id in self._flushing:
            return
        idle = self.config.limits.upload_idle_s
        message = f"no upload chunk arrived for {idle:g} s; the upload was discarded"
        log.info("job %s: upload stalled, failed", job.id)
        self.store.set_state(job, "failed", error=("upload_timeout", message))
        self.store.drop_upload(job)
        self.hub.publish(job.id, {"type": "job.failed", "job": job.id, "code": "upload_timeout",
                                  "message": message})

    # ---- identity ------------------------------------------------------------------------
    def identity(self) -> dict:
        return {"protocol": PROTOCOL_VERSION, "server": __version__,
                "model": self.engine.model_name, "device": self.engine.device}

    # ---- jobs ----------------------------------------------------------------------------
    def create_job(self, params: dict, image: dict, mask: Optional[dict], chunk_bytes: int,
                   source: str, req: Any = None, owner: Optional[str] = None,
                   siblings: Iterable[str] = ()) -> Job:
        """Record a new job. `owner` is the creating token's id; `siblings` the ids of jobs the
        same tokenless connection created: either is held to `max_queued_per_client`."""
        if params.get("peer") and (self.peers is None or not self.peers.is_paired(params["peer"])):
            raise ProtocolError("bad_params", "peer is not a paired render box", req=req)
        limits = self.config.limits
        unfinished = [j for j in self.store.jobs.values() if j.state in UNFINISHED]
        if len(unfinished) >= limits.max_queued:
            raise ProtocolError("busy", f"the server already holds {len(unfinished)} unfinished "
                                        f"jobs", req=req)
        siblings = set(siblings)
        mine = sum(1 for j in unfinished
                   if (owner is not None and j.owner == owner) or j.id in siblings)
        if mine >= limits.max_queued_per_client:
            raise ProtocolError("busy", f"this client already holds {mine} unfinished jobs; "
                                        f"finish, cancel or release some first", req=req)
        try:
            return self.store.create(params, image, mask, chunk_bytes, source, owner=owner)
        except StoreError as exc:
            raise as_protocol_error(exc, req) from None

    async def complete_upload(self, job: Job) -> None:
        """Flush a fully received upload (in a thread: the loop keeps serving) and queue it."""
        if job.state != JobState.UPLOADING or job.id in self._flushing:
            return
        self._flushing.add(job.id)
        try:
            await asyncio.to_thread(self.store.flush_upload, job)
        except OSError:
            log.exception("could not flush the upload of job %s", job.id)
            return
        finally:
            self._flushing.discard(job.id)
        if job.state == JobState.UPLOADING:         # not cancelled or released meanwhile
            self.queue_job(job)

    def queue_job(self, job: Job) -> None:
        self.store.finish_upload(job)
        self.hub.publish(job.id, {"type": "job.queued", "job": job.id,
                                  "position": self.worker.position(job)})
        self.worker.submit(job)

    def cancel_job(self, job: Job) -> None:
        """Cancel an unfinished job; an upload's files are freed at once."""
        was_uploading = job.state == "uploading"
        self.worker.cancel(job)
        if was_uploading:
            self.store.drop_upload(job)

    def release(self, job: Job) -> None:
        if job.state == JobState.RUNNING:
            self.worker.release_when_stopped(job)
            self.worker.cancel(job)
            return
        if job.state in (JobState.UPLOADING, JobState.QUEUED):
            self.worker.cancel(job)
        self.store.delete(job)
        self.worker.previews.pop(job.id, None)
        self.hub.forget(job.id)

    def status_event(self, job: Job) -> dict:
        if job.state == JobState.DONE:
            event = done_event(job, "job.status")
        else:
            event = {"type": "job.status", "job": job.id}
        event.update(state=job.state, position=self.worker.position(job))
        if job.state == JobState.UPLOADING:
            event["missing"] = {name: s.missing() for name, s in job.streams.items()}
        if job.state in (JobState.RUNNING, JobState.QUEUED):
            event["progress"] = self.worker.progress.get(job.id)
        if job.state == JobState.FAILED:
            event["error"] = {"code": job.error_code, "message": job.error_message}
        return event

    def status_json(self, job: Job) -> dict:
        progress = self.worker.progress.get(job.id)
        if progress is None and job.state == JobState.DONE:
            progress = {"phase": JobState.DONE, "step": job.params["steps"],
                        "steps": job.params["steps"], "tile": 0, "tiles": 0, "fraction": 1.0,
                        "eta_s": 0.0}
        error = {"code": job.error_code, "message": job.error_message} \
            if job.state == JobState.FAILED else None
        return {"job": job.id, "state": job.state, "position": self.worker.position(job),
                "progress": progress, "error": error, "warnings": job_warnings(job)}
