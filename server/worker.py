"""The render worker: runs queued jobs in the order they were queued, one at a time, or as many
at once as the engine has slots (a cluster engine: one per render actor).

The engine call runs in a thread so the event loop keeps serving uploads, downloads and progress;
cancellation reaches the engine through its `should_cancel` callback.
"""
from __future__ import annotations

import asyncio
import errno
import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np

from engine.api import Cancelled, EngineError, Progress, RenderResult, Unit

from .hub import Hub
from .store import Job, JobState, JobStore
from .validate import DTYPES, chunk_count

log = logging.getLogger("seamwise.worker")

PREVIEW_INTERVAL_S = 0.5
PROGRESS_INTERVAL_S = 0.1
PREVIEW_SIDE = 512


class Worker:
    def __init__(self, store: JobStore, engine, hub: Hub, forwarder=None):
        self.store = store
        self.engine = engine
        self.hub = hub
        self.forwarder = forwarder
        self.slots = max(1, int(getattr(engine, "slots", 1)))
        self.running: dict[str, Job] = {}       # job id -> job, at most `slots`
        self._executor = ThreadPoolExecutor(self.slots, "render") if self.slots > 1 else None
        self.progress: dict[str, dict] = {}     # job id -> latest progress fields
        self.previews: dict[str, bytes] = {}    # job id -> latest JPEG
        self._cancels: dict[str, threading.Event] = {}   # running job id -> its cancel flag
        self._wake = asyncio.Event()
        self._release_after: set[str] = set()
        self._task: Optional[asyncio.Task] = None
        self._forwards: set[asyncio.Task] = set()
        self.draining = False

    # ---- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="worker")

    async def stop(self) -> None:
        for flag in self._cancels.values():
            flag.set()
        for task in [self._task, *self._forwards]:
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def drain(self, timeout: float) -> bool:
        """Shut down at a safe point: start nothing new, let the running render stop at its next
        cancellation check and put it back in the queue (it runs again after a restart).
        Forwarded jobs stay `running` in the store and are queued again at the next start.
        True when the render thread stopped within `timeout`."""
        self.draining = True
        for task in list(self._forwards):
            task.cancel()
        for flag in self._cancels.values():
            flag.set()
        self._wake.set()
        if self._task is None:
            return True
        done, _ = await asyncio.wait([self._task], timeout=timeout)
        return bool(done)

    def wake(self) -> None:
        self._wake.set()

    def local_queue(self) -> list[Job]:
        """Queued jobs for this machine's engine (forwarded jobs do not wait for it)."""
        return [j for j in self.store.in_order((JobState.QUEUED,)) if not j.params.get("peer")]

    def position(self, job: Job) -> Optional[int]:
        """Jobs that run before this one (running jobs that hold every slot included); 0 = running
        or next."""
        if job.state == JobState.RUNNING or job.id in self.running:   # (or just starting)
            return 0
        if job.state != JobState.QUEUED:
            return None
        if job.params.get("peer"):
            return 0
        ahead = sum(1 for j in self.local_queue() if j.seq < job.seq and j.id not in self.running)
        return ahead + max(0, len(self.running) - self.slots + 1)

    def submit(self, job: Job) -> None:
        """A job was queued: forwarded jobs start at once, local ones wait for the worker."""
        if job.params.get("peer") and self.forwarder is not None:
            task = asyncio.get_running_loop().create_task(self._run_one(job))
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)
        else:
            self.wake()

    def cancel(self, job: Job) -> bool:
        """Cancel a job that has not finished; True if something was cancelled."""
        if job.state in (JobState.UPLOADING, JobState.QUEUED):
            self.store.set_state(job, JobState.CANCELLED)
            job.streams = {}
            self.hub.publish(job.id, {"type": "job.cancelled", "job": job.id})
            self._announce_positions()
            return True
        flag = self._cancels.get(job.id)
        if job.state == JobState.RUNNING and flag is not None:
            flag.set()
            return True
        return False

    def release_when_stopped(self, job: Job) -> None:
        self._release_after.add(job.id)

    # ---- the loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        tasks: set[asyncio.Task] = set()
        try:
            while not self.draining:
                queued = [j for j in self.local_queue() if j.id not in self.running]
                if not queued or len(self.running) >= self.slots:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                job = queued[0]
                self.running[job.id] = job
                task = asyncio.get_running_loop().create_task(self._run_slot(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:     # stop(): the render threads are told by their flags
            for task in tasks:
                task.cancel()
            raise
        if tasks:                             # draining: each running render reaches a safe point
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_slot(self, job: Job) -> None:
        try:
            await self._run_one(job)
        finally:
            self.running.pop(job.id, None)
            self._announce_positions()
            self.wake()

    async def _run_one(self, job: Job) -> None:
        cancel = self._cancels[job.id] = threading.Event()
        try:
            await self._render(job, cancel)
        except asyncio.CancelledError:
            raise
        except Exception:   # never let one job stop the worker
            log.exception("job %s failed", job.id)
            try:
                self._finish_failed(job, "internal", "the server failed while rendering")
            except Exception:
                log.exception("could not record the failure of job %s", job.id)
                job.state = JobState.FAILED          # in memory at least: do not retry forever
            await asyncio.sleep(0.5)
        finally:
            self._cancels.pop(job.id, None)
            self.progress.pop(job.id, None)
            if job.id in self._release_after:
                self._release_after.discard(job.id)
                self.store.delete(job)
                self.previews.pop(job.id, None)
                self.hub.forget(job.id)

    def _announce_positions(self) -> None:
        for j in self.local_queue():
            self.hub.publish(j.id, self._progress_event(j, None))

    def _progress_event(self, job: Job, p: Optional[dict]) -> dict:
        p = p or {"phase": JobState.QUEUED, "step": 0, "steps": job.params["steps"], "tile": 0,
                  "tiles": 0, "unit": Unit.TILE, "fraction": 0.0, "eta_s": None}
        return dict({"type": "progress", "job": job.id, "state": job.state,
                     "position": self.position(job)}, **p)

    async def _render(self, job: Job, cancel: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self.store.set_state(job, JobState.RUNNING)
        self.hub.publish(job.id, self._progress_event(job, None))
        self._announce_positions()
        if job.params.get("peer") and self.forwarder is not None:
            outcome = await self.forwarder.run(job, cancel, self._progress_from_peer)
        else:
            outcome = await loop.run_in_executor(self._executor, self._render_in_thread, job,
                                                 cancel, loop)
        kind, payload = outcome
        if kind == JobState.CANCELLED and self.draining:     # stopped for shutdown, not by a client
            self.store.set_state(job, JobState.QUEUED)
            log.info("job %s paused for shutdown; it resumes after a restart", job.id)
            return
        if kind == JobState.DONE:
            result, seams, stats = payload
            self.store.set_state(job, JobState.DONE, result=dict(result, seams=seams), stats=stats)
            self.hub.publish(job.id, done_event(job))
        elif kind == JobState.CANCELLED:
            self.store.set_state(job, JobState.CANCELLED)
            self.hub.publish(job.id, {"type": "job.cancelled", "job": job.id})
        else:
            code, message = payload
            self._finish_failed(job, code, message)

    def _finish_failed(self, job: Job, code: str, message: str) -> None:
        self.store.set_state(job, JobState.FAILED, error=(code, message))
        self.hub.publish(job.id, {"type": "job.failed", "job": job.id, "code": code,
                                  "message": message})

    def _progress_from_peer(self, job: Job, fields: dict) -> None:
        self.progress[job.id] = fields
        self.hub.publish(job.id, self._progress_event(job, fields))

    # ---- inside the render thread --------------------------------------------------------
    def _render_in_thread(self, job: Job, cancel: threading.Event,
                          loop: asyncio.AbstractEventLoop):
        """Render one job: its uploaded pixels in, its result files out, as an outcome
        (JobState.DONE, headers) | (JobState.CANCELLED, None) | (JobState.FAILED, (code, message))."""
        image, mask = self._inputs(job)
        try:
            out = self.engine.render(image, dict(job.params), mask,
                                     self._progress_reporter(job, loop), cancel.is_set,
                                     icc=job.icc, profile=job.image.get("profile"))
        except Cancelled:
            return JobState.CANCELLED, None
        except EngineError as exc:
            return JobState.FAILED, ("render_failed", str(exc))
        except MemoryError:
            return JobState.FAILED, ("render_failed", "the server ran out of memory for this image")
        finally:
            del image, mask
        if cancel.is_set():
            return JobState.CANCELLED, None
        return self._store_result(job, out)

    def _inputs(self, job: Job) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The uploaded image and mask, mapped copy-on-write (the engine may scale in place)."""
        h = job.image
        image = np.memmap(self.store.path(job.id, "image.raw"), dtype=np.dtype(DTYPES[h["depth"]]),
                          mode="c", shape=(h["height"], h["width"], h["channels"]))
        mask = None
        if job.mask:
            mask = np.memmap(self.store.path(job.id, "mask.raw"), dtype=np.uint8, mode="c",
                             shape=(h["height"], h["width"]))
        return image, mask

    def _progress_reporter(self, job: Job,
                           loop: asyncio.AbstractEventLoop) -> Callable[[Progress], None]:
        """The engine's progress callback: latest fields kept for status requests, events and
        previews published on the loop at most every PROGRESS/PREVIEW_INTERVAL_S."""
        t0 = time.monotonic()
        state = {"progress_at": 0.0, "preview_at": 0.0}

        def on_progress(p: Progress) -> None:
            now = time.monotonic()
            fraction = float(min(max(p.fraction, 0.0), 1.0))
            eta = (now - t0) / fraction * (1 - fraction) if fraction > 0 else None
            fields = {"phase": str(p.phase), "step": int(p.step), "steps": int(p.steps),
                      "tile": int(p.tile), "tiles": int(p.tiles), "unit": str(p.unit),
                      "fraction": fraction, "eta_s": eta}
            runs_on = getattr(p, "runs_on", None)    # a cluster engine's: which actor, which box
            if runs_on:
                fields["runs_on"] = runs_on
            self.progress[job.id] = fields
            if now - state["progress_at"] >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                state["progress_at"] = now
                loop.call_soon_threadsafe(self._publish_progress, job, fields)
            if p.preview is not None and now - state["preview_at"] >= PREVIEW_INTERVAL_S:
                state["preview_at"] = now
                try:
                    jpeg, w, hh = encode_preview(p.preview())
                except Exception:
                    log.exception("preview failed")
                    return
                loop.call_soon_threadsafe(self._publish_preview, job, jpeg, w, hh)

        return on_progress

    def _store_result(self, job: Job, out: RenderResult):
        """Check the engine's arrays against the job, write them, and describe them."""
        h = job.image
        dtype = np.dtype(DTYPES[h["depth"]])
        scale = job.params["scale"]
        want = (h["height"] * scale, h["width"] * scale, h["channels"])
        result = np.asarray(out.image)
        if result.shape != want or result.dtype != dtype.newbyteorder("="):
            return JobState.FAILED, ("internal", f"the engine returned {result.shape} {result.dtype}, "
                                          f"expected {want} {dtype}")
        seams = np.asarray(out.seam_risk)
        if seams.dtype != np.uint8:
            seams = (np.clip(np.nan_to_num(seams.astype(np.float32)), 0, 1) * 255 + 0.5
                     ).astype(np.uint8)
        if seams.shape != want[:2]:
            return JobState.FAILED, ("internal", "the engine returned a seam map of the wrong size")
        try:
            self.store.write_array(job, "result.raw", result.astype(dtype, copy=False))
            self.store.write_array(job, "seams.raw", seams)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return JobState.FAILED, ("disk_full", "the data directory is full; the result could not "
                                               "be stored")
            raise
        headers = [_stream_header(want[1], want[0], channels, depth, int(a.nbytes), job.chunk_bytes)
                   for a, channels, depth in ((result, want[2], h["depth"]), (seams, 1, 8))]
        return JobState.DONE, (*headers, _jsonable(out.stats))

    def _publish_progress(self, job: Job, fields: dict) -> None:
        if job.state == JobState.RUNNING:
            self.hub.publish(job.id, self._progress_event(job, fields))

    def _publish_preview(self, job: Job, jpeg: bytes, w: int, h: int) -> None:
        self.previews[job.id] = jpeg
        self.hub.publish(job.id, {"type": "preview", "job": job.id, "width": w, "height": h,
                                  "jpeg": jpeg})


def done_event(job: Job, kind: str = "job.done") -> dict:
    result = {k: v for k, v in job.result.items() if k != "seams"}
    result["icc"] = job.icc
    if job.image.get("profile"):
        result["profile"] = job.image["profile"]
    return {"type": kind, "job": job.id, "result": result, "seams": job.result["seams"],
            "stats": job.stats or {}, "warnings": job_warnings(job)}


def job_warnings(job: Job) -> list[str]:
    """What the user should know about a finished job's result (an unknown colour profile)."""
    warnings = (job.stats or {}).get("warnings") or []
    return [str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)]


def encode_preview(rgb: np.ndarray) -> tuple[bytes, int, int]:
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8), "RGB")
    img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue(), img.width, img.height


def _stream_header(width: int, height: int, channels: int, depth: int, nbytes: int,
                   chunk_bytes: int) -> dict:
    """A result stream's header, as the done event and fetches describe it."""
    return {"width": width, "height": height, "channels": channels, "depth": depth,
            "bytes": nbytes, "chunk_bytes": chunk_bytes, "chunks": chunk_count(nbytes, chunk_bytes)}


def _jsonable(stats: dict) -> dict:
    import json
    out = {}
    for k, v in (stats or {}).items():
        try:
            json.dumps(v)
            out[str(k)] = v
        except TypeError:
            out[str(k)] = repr(v)
    return out
