"""Durable job storage: one SQLite index plus one folder of raw files per job.

A job row and its upload files exist before any acknowledgement mentions the job, and every upload
chunk is written (data, then its bit in the `.got` map) before it is acknowledged, so a crash of
the server process loses nothing that a client was told is stored. Uploads are flushed with fsync
before the job is queued, results before the job is reported done, so a power cut loses at most
uploads still in progress.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .errors import ProtocolError
from .validate import chunk_count

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    params TEXT NOT NULL,
    image TEXT NOT NULL,
    icc BLOB,
    mask TEXT,
    chunk_bytes INTEGER NOT NULL,
    source TEXT NOT NULL,
    result TEXT,
    stats TEXT,
    error_code TEXT,
    error_message TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
CREATE TABLE IF NOT EXISTS pair_codes (
    hash BLOB PRIMARY KEY,
    salt BLOB NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    port INTEGER NOT NULL,
    token TEXT NOT NULL,
    paired REAL NOT NULL
);
"""

UPLOAD_STREAMS = ("image", "mask")


class JobState(StrEnum):
    """A job's life (PROTOCOL.md section 4); str-valued, so stored rows and messages keep the
    plain words."""
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED = (JobState.UPLOADING, JobState.QUEUED, JobState.RUNNING)
FINAL = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


def open_db(data_dir: Path) -> sqlite3.Connection:
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(data_dir, 0o700)
    except OSError:
        pass
    db = sqlite3.connect(str(data_dir / "seamwise.db"), timeout=10.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    if "owner" not in columns:          # data directories from before per-client limits
        db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
    return db


@dataclass
class Stream:
    """One upload stream: its declared size, chunking and which chunks are on disk."""
    name: str
    bytes: int
    chunk_bytes: int
    got: bytearray

    @property
    def chunks(self) -> int:
        return chunk_count(self.bytes, self.chunk_bytes)

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_bytes
        return start, min(start + self.chunk_bytes, self.bytes)

    def missing(self) -> list[int]:
        return [i for i, b in enumerate(self.got) if not b]

    def complete(self) -> bool:
        return all(self.got)


@dataclass
class Job:
    id: str
    seq: int
    state: JobState
    created: float
    updated: float
    params: dict
    image: dict                  # header without icc, with "bytes"
    icc: Optional[bytes]
    mask: Optional[dict]
    chunk_bytes: int
    source: str                  # "raw" (WebSocket), "tiff" or "png" (HTTP upload format)
    result: Optional[dict] = None
    stats: Optional[dict] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    streams: dict = field(default_factory=dict)   # upload streams, only while uploading
    owner: Optional[str] = None  # id of the token that created it, if any
    active: float = field(default_factory=time.monotonic)   # last upload activity (this process)

    def header(self) -> dict:
        return dict(self.image, icc=self.icc)


class JobStore:
    """The jobs table and the job folders. Used from the event-loop thread only."""

    def __init__(self, db: sqlite3.Connection, data_dir: Path):
        self.db = db
        self.root = data_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self._load()

    # ---- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        rows = self.db.execute(
            "SELECT id, seq, state, created, updated, params, image, icc, mask, chunk_bytes, "
            "source, result, stats, error_code, error_message, owner FROM jobs ORDER BY seq"
        ).fetchall()
        for r in rows:
            job = Job(id=r[0], seq=r[1], state=JobState(r[2]), created=r[3], updated=r[4],
                      params=json.loads(r[5]), image=json.loads(r[6]), icc=r[7],
                      mask=json.loads(r[8]) if r[8] else None, chunk_bytes=r[9], source=r[10],
                      result=json.loads(r[11]) if r[11] else None,
                      stats=json.loads(r[12]) if r[12] else None,
                      error_code=r[13], error_message=r[14], owner=r[15])
            if job.state == JobState.RUNNING:   # interrupted by a crash: run it again
                job.state = JobState.QUEUED
                self._save_state(job)
            if job.state == JobState.UPLOADING:
                job.streams = self._open_streams(job)
            self.jobs[job.id] = job

    def _open_streams(self, job: Job) -> dict:
        streams = {}
        for name, header in (("image", job.image), ("mask", job.mask)):
            if header is None:
                continue
            n = chunk_count(header["bytes"], job.chunk_bytes)
            try:
                got = bytearray(self.path(job.id, name + ".got").read_bytes()[:n])
            except FileNotFoundError:
                got = bytearray()
            got.extend(b"\0" * (n - len(got)))
            streams[name] = Stream(name, header["bytes"], job.chunk_bytes, got)
        return streams

    # ---- paths ---------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def path(self, job_id: str, name: str) -> Path:
        return self.root / job_id / name

    # ---- creation ------------------------------------------------------------------------
    def create(self, params: dict, image: dict, mask: Optional[dict], chunk_bytes: int,
               source: str, extra_bytes: int = 0, owner: Optional[str] = None) -> Job:
        """Record a new job and preallocate its upload files; disk_full if they cannot fit.

        `extra_bytes` is what the job will still need later (its result and seam map): it is
        checked against the free space now so that a job that cannot finish is not accepted.
        """
        job_id = secrets.token_hex(16)
        jdir = self.job_dir(job_id)
        need = image["bytes"] + (mask["bytes"] if mask else 0) + extra_bytes
        free = shutil.disk_usage(self.root).free
        if need + 1024 * 1024 > free:
            raise ProtocolError("disk_full", f"the server's data directory has {free} bytes free; "
                                             f"this job needs {need}")
        now = time.time()
        header = {k: v for k, v in image.items() if k != "icc"}
        job = Job(id=job_id, seq=0, state=JobState.UPLOADING, created=now, updated=now, params=params,
                  image=header, icc=image.get("icc"), mask=mask, chunk_bytes=chunk_bytes,
                  source=source, owner=owner)
        try:
            jdir.mkdir(parents=True)
            for name, h in (("image", image), ("mask", mask)):
                if h is None:
                    continue
                n = chunk_count(h["bytes"], chunk_bytes)
                _preallocate(self.path(job_id, name + ".raw"), h["bytes"])
                _preallocate(self.path(job_id, name + ".got"), n)
                job.streams[name] = Stream(name, h["bytes"], chunk_bytes, bytearray(n))
            seq = self._next_seq()
            job.seq = seq
            self.db.execute(
                "INSERT INTO jobs (id, seq, state, created, updated, params, image, icc, mask, "
                "chunk_bytes, source, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.id, seq, job.state, now, now, json.dumps(params), json.dumps(header),
                 job.icc, json.dumps(mask) if mask else None, chunk_bytes, source, owner))
        except OSError as exc:
            shutil.rmtree(jdir, ignore_errors=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ProtocolError("disk_full", "the server's data directory is full") from None
            raise
        except sqlite3.OperationalError as exc:
            shutil.rmtree(jdir, ignore_errors=True)
            if "full" in str(exc):
                raise ProtocolError("disk_full", "the server's data directory is full") from None
            raise
        self.jobs[job_id] = job
        return job

    def _next_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()
        return int(row[0])

    # ---- upload --------------------------------------------------------------------------
    def write_chunk(self, job: Job, stream: Stream, index: int, data: bytes) -> bool:
        """Store one chunk; returns False when it was already stored (a duplicate)."""
        if stream.got[index]:
            return False
        start, _ = stream.chunk_range(index)
        try:
            _pwrite_all(self.path(job.id, stream.name + ".raw"), data, start)
            _pwrite_all(self.path(job.id, stream.name + ".got"), b"\1", index)
        except FileNotFoundError:
            raise ProtocolError("not_found", "the job was cancelled or released",
                                job=job.id) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ProtocolError("disk_full", "the server's data directory is full",
                                    job=job.id) from None
            raise
        stream.got[index] = 1
        job.active = time.monotonic()
        return True

    def write_whole(self, job: Job, name: str, array) -> None:
        """Store a whole upload stream at once (HTTP uploads); marks every chunk as stored."""
        stream = job.streams[name]
        flat = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        if len(flat) != stream.bytes:
            raise ProtocolError("bad_request", f"{name} has the wrong size")
        try:
            _pwrite_all(self.path(job.id, name + ".raw"), flat, 0)
            _pwrite_all(self.path(job.id, name + ".got"), b"\1" * stream.chunks, 0)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ProtocolError("disk_full", "the server's data directory is full",
                                    job=job.id) from None
            raise
        stream.got[:] = b"\1" * stream.chunks

    def write_array(self, job: Job, name: str, array: np.ndarray,
                    block: int = 64 * 1024 * 1024) -> None:
        """Write a result array's bytes to the job's folder without a full-size copy, then fsync
        (before the job is reported done). OSError (a full disk) is the caller's to report."""
        path = self.path(job.id, name)
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        with open(path, "wb") as f:
            for start in range(0, flat.size, block):
                f.write(memoryview(flat[start:start + block]))
            f.flush()
        _fsync_path(path)

    def flush_upload(self, job: Job) -> None:
        """Force the uploaded files to stable storage (slow: call it from a thread)."""
        for name in ("image", "mask"):
            path = self.path(job.id, name + ".raw")
            if path.exists():
                _fsync_path(path)

    def finish_upload(self, job: Job) -> None:
        """Queue a job whose upload is complete and flushed."""
        job.streams = {}
        self.set_state(job, JobState.QUEUED)

    # ---- state ---------------------------------------------------------------------------
    def set_state(self, job: Job, state: JobState, *, error: Optional[tuple[str, str]] = None,
                  result: Optional[dict] = None, stats: Optional[dict] = None) -> None:
        job.state = state
        job.updated = time.time()
        if error:
            job.error_code, job.error_message = error
        if result is not None:
            job.result = result
        if stats is not None:
            job.stats = stats
        self._save_state(job)

    def _save_state(self, job: Job) -> None:
        self.db.execute(
            "UPDATE jobs SET state=?, updated=?, result=?, stats=?, error_code=?, error_message=? "
            "WHERE id=?",
            (job.state, job.updated, json.dumps(job.result) if job.result else None,
             json.dumps(job.stats) if job.stats else None, job.error_code, job.error_message,
             job.id))

    # ---- descriptive metadata of HTTP uploads (XMP, EXIF, copyright), returned with the result
    def write_metadata(self, job: Job, metadata: dict) -> None:
        import msgpack

        with open(self.path(job.id, "metadata.msgpack"), "wb") as f:
            f.write(msgpack.packb(metadata, use_bin_type=True))
            f.flush()
            os.fsync(f.fileno())

    def read_metadata(self, job: Job) -> dict:
        import msgpack

        try:
            return msgpack.unpackb(self.path(job.id, "metadata.msgpack").read_bytes(), raw=False)
        except FileNotFoundError:
            return {}

    def drop_upload(self, job: Job) -> None:
        """Free the disk of an upload that will never complete (the job row stays)."""
        job.streams = {}
        for name in UPLOAD_STREAMS:
            for suffix in (".raw", ".got"):
                self.path(job.id, name + suffix).unlink(missing_ok=True)

    def delete(self, job: Job) -> None:
        self.db.execute("DELETE FROM jobs WHERE id=?", (job.id,))
        self.jobs.pop(job.id, None)
        shutil.rmtree(self.job_dir(job.id), ignore_errors=True)

    # ---- queries -------------------------------------------------------------------------
    def get(self, job_id: object) -> Job:
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise ProtocolError("not_found", "no such job (it may have been released or expired)",
                                job=job_id if isinstance(job_id, str) else None)
        return job

    def in_order(self, states: Iterable[JobState]) -> list[Job]:
        states = tuple(states)
        return sorted((j for j in self.jobs.values() if j.state in states), key=lambda j: j.seq)

    def stalled(self, idle_s: float) -> list[Job]:
        """Uploads that received no chunk for `idle_s` (counted from this process's start)."""
        now = time.monotonic()
        return [j for j in self.jobs.values() if j.state == "uploading" and now - j.active > idle_s]

    def expired(self, retention_s: float, now: Optional[float] = None) -> list[Job]:
        now = time.time() if now is None else now
        return [j for j in self.jobs.values()
                if (j.state in FINAL or j.state == JobState.UPLOADING) and now - j.updated > retention_s]


def _preallocate(path: Path, size: int) -> None:
    """Create the file at its final size (sparse: reserving blocks with fallocate made every
    later write convert extents, three times the CPU). Free space was checked just before."""
    with open(path, "wb") as f:
        f.truncate(size)


def _pwrite_all(path: Path, data, offset: int) -> None:
    with open(path, "r+b", buffering=0) as f:
        f.seek(offset)
        view = memoryview(data)
        while view:
            n = f.write(view)
            view = view[n:]


def _fsync_path(path: Path) -> None:
    with open(path, "r+b") as f:
        os.fsync(f.fileno())
