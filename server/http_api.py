"""HTTP API (PROTOCOL.md section 7): for Lightroom, scripts and other render boxes."""
from __future__ import annotations

import asyncio
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
from aiohttp import web

from . import __version__, uploads
from .budget import MemoryBudget
from .config import PROTOCOL_VERSION
from .errors import ProtocolError
from .state import ServerState
from .store import JobState
from .validate import (DTYPES, json_object_body, validate_image_header, validate_mask_header,
                       validate_params)

IMAGE_TYPES = {"image/tiff": "tiff", "image/png": "png"}
DECODE_BUDGET = web.AppKey("decode_budget", MemoryBudget)


def json_response(body: dict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _state(request: web.Request) -> ServerState:
    return request.app["state"]


async def health(request: web.Request) -> web.Response:
    s = _state(request)
    return json_response({"ok": True, "version": __version__, "model": s.engine.model_name,
                          "device": s.engine.device, "recommended": s.engine.recommended_map()})


async def info(request: web.Request) -> web.Response:
    s = _state(request)
    queue = len(s.store.in_order((JobState.QUEUED, JobState.RUNNING)))
    health = await asyncio.to_thread(_health_facts, s)
    if s.config.cluster:    # Ray's own calls block: off the loop too
        health["cluster"] = await asyncio.to_thread(cluster_info, s)
    return json_response({"version": __version__, "protocol": PROTOCOL_VERSION,
                          "model": s.engine.model_name, "device": s.engine.device,
                          "recommended": s.engine.recommended_map(),
                          "vram_bytes": s.engine.vram_bytes, "limits": s.config.limits.public(),
                          "lan": s.config.lan, "queue": queue, **health})


def cluster_info(s: ServerState) -> dict:
    """The cluster's size and which actor and box runs each running job (PROTOCOL.md 7.2)."""
    running = [{"job": job_id, **p["runs_on"]} for job_id, p in list(s.worker.progress.items())
               if p.get("runs_on")]
    return dict(s.engine.info(), running=running)


def _health_facts(s: ServerState) -> dict:
    """What `seamwise doctor` would tell the user, for a panel that cannot render (PROTOCOL.md
    7.2): the torch build, free memory and disk, and one line of advice per problem."""
    from seamwise.doctor import advise, machine_facts

    m = machine_facts(s.config.data_dir)
    facts = {"torch": m.get("torch"), "torch_build": m.get("torch_build"),
             "backend": m.get("backend"), "device_name": m.get("device_name"),
             "vram_free_bytes": m.get("vram_free_bytes"), "ram_free_bytes": m["ram_free_bytes"],
             "disk_free_bytes": m["disk_free_bytes"]}
    advice = advise({"machine": m})
    if s.model_error:
        advice.append(f"the model did not load ({s.model_error}): pick another with "
                      "`seamwise models default` and restart the server")
    return {**facts, "model_error": s.model_error, "advice": advice}


async def models(request: web.Request) -> web.Response:
    """The models this server can list (PROTOCOL.md 7.3): ids, names and families, no paths."""
    s = _state(request)
    from seamwise import models as mm

    def listing() -> list[dict]:
        return [m.public() for m in mm.discover(mm.Registry.load(s.config.data_dir))]

    try:
        found = await asyncio.to_thread(listing)
    except mm.ModelError as e:
        raise ProtocolError("internal", str(e)) from None
    return json_response({"models": found, "in_use": s.engine.model_name})


async def _receive_form(request: web.Request, files: uploads.Spool, budget: list) -> dict:
    """Spool a multipart form's `image` and `mask` parts; returns its `params` part."""
    extra: dict = {}
    reader = await request.multipart()
    async for part in reader:
        if part.name in ("image", "mask") and part.name not in files.paths:
            await uploads.receive(part.read_chunk, files.path(part.name), budget,
                                  ("png", "tiff"), f"the {part.name} part")
        elif part.name == "params":
            text = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                text += chunk
                if len(text) > _state(request).config.limits.max_json_body_bytes:
                    raise ProtocolError("too_large", "the params part is too large")
            try:
                extra = json.loads(text)
            except ValueError:
                raise ProtocolError("bad_params", "the params part must be JSON") from None
            if not isinstance(extra, dict):
                raise ProtocolError("bad_params", "the params part must be a JSON object")
        else:
            raise ProtocolError("bad_request", f"unexpected form part {str(part.name)[:40]!r}")
    if "image" not in files.paths:
        raise ProtocolError("bad_request", "the form has no image part")
    return extra


@contextmanager
def _holding_disk(s: ServerState, nbytes: Optional[int]):
    """Reserve the spooled body's size on disk while it is received (if the client said it)."""
    key = object()
    if nbytes:
        s.store.check_room(nbytes)
        s.store.held[key] = nbytes
    try:
        yield
    finally:
        s.store.held.pop(key, None)


async def create_job(request: web.Request) -> web.Response:
    """POST /v1/jobs: one image (and optional mask) in the body, the job queued at once."""
    s = _state(request)
    limits = s.config.limits
    if request.headers.get("X-Seamwise") != "1":
        raise ProtocolError("bad_request", "POST /v1/jobs needs the header X-Seamwise: 1")
    ctype = request.content_type
    if ctype not in IMAGE_TYPES and ctype != "multipart/form-data":
        raise ProtocolError("unsupported_image",
                            "send the image as image/tiff, image/png or multipart/form-data")
    raw_params = dict(request.query)
    if ctype in IMAGE_TYPES:                 # all parameters are known: check them before the body
        validate_params(raw_params, s.engine.recommended)
    budget = [limits.max_http_body_bytes]
    with _holding_disk(s, request.content_length):
        async with uploads.spool(s.config.data_dir) as files:
            if ctype in IMAGE_TYPES:
                await uploads.receive(request.content.read, files.path("image"), budget,
                                      (IMAGE_TYPES[ctype],), f"the body (sent as {ctype})")
            else:
                try:
                    raw_params.update(await _receive_form(request, files, budget))
                except (ProtocolError, OSError):
                    raise
                except Exception:   # the multipart parser raises several types on a broken body
                    raise ProtocolError("bad_request", "the multipart body is malformed") from None
            params = validate_params(raw_params, s.engine.recommended)
            headers = {name: await uploads.inspect(path, name, limits)
                       for name, path in files.paths.items()}
            need = uploads.decode_need(list(headers.values()))
            async with request.app[DECODE_BUDGET].hold(need, "this upload"):
                return await _store_upload(s, params, files.paths, limits,
                                           owner=request.get("token_id"))


async def _store_upload(s: ServerState, params: dict, paths: dict, limits,
                        owner: Optional[str] = None) -> web.Response:
    """Decode the spooled files, check them as a WebSocket upload is checked, create the job."""
    picture = await uploads.decode(paths["image"], "image", limits)
    px = picture.pixels
    if px.ndim != 3 or px.shape[2] not in (3, 4):
        raise ProtocolError("unsupported_image", "the image must be RGB or RGBA")
    header = validate_image_header({"width": px.shape[1], "height": px.shape[0],
                                    "channels": px.shape[2], "depth": px.dtype.itemsize * 8,
                                    "icc": picture.icc}, limits)
    mask = mask_header = None
    if "mask" in paths:
        mask = (await uploads.decode(paths["mask"], "mask", limits)).pixels
        if mask.ndim == 3:
            if mask.shape[2] != 1:
                raise ProtocolError("unsupported_image", "the mask must be single-channel grey")
            mask = mask[:, :, 0]
        if mask.dtype != np.uint8:
            raise ProtocolError("unsupported_image", "the mask must be 8-bit")
        mask_header = validate_mask_header({"width": mask.shape[1], "height": mask.shape[0]},
                                           header)
    job = s.create_job(params, header, mask_header, limits.max_chunk_bytes, picture.format,
                       owner=owner)
    try:
        await asyncio.to_thread(s.store.write_whole, job, "image",
                                picture.pixels.astype(DTYPES[header["depth"]], copy=False))
        if mask is not None:
            await asyncio.to_thread(s.store.write_whole, job, "mask", mask)
        if picture.metadata:
            await asyncio.to_thread(s.store.write_metadata, job, picture.metadata)
    except BaseException:
        s.store.delete(job)
        raise
    del px, picture, mask
    await asyncio.to_thread(s.store.flush_upload, job)
    s.queue_job(job)
    return json_response({"job": job.id, "state": job.state,
                          "position": s.worker.position(job)}, status=202)


async def job_status(request: web.Request) -> web.Response:
    s = _state(request)
    job = s.store.get(request.match_info["id"])
    return json_response(s.status_json(job))


def _done_job(s: ServerState, job_id: str):
    job = s.store.get(job_id)
    if job.state != JobState.DONE:
        if job.state == JobState.FAILED:
            raise ProtocolError("not_ready", f"the job failed: {job.error_message}", job=job.id)
        raise ProtocolError("not_ready", f"the job is {job.state}", job=job.id)
    return job


def _encoded_result(s: ServerState, job) -> Path:
    """The job's result as a file in its delivery format, encoded once and kept beside the raw
    pixels: Range requests (a client downloading in pieces, or resuming) read the same bytes."""
    from engine.imageio import Picture, encode_image
    r = job.result
    fmt = job.source if job.source in ("tiff", "png") else "tiff"
    if fmt == "png" and r["depth"] == 32:
        fmt = "tiff"
    target = s.store.path(job.id, f"result.{fmt}")
    if target.exists():
        return target
    pixels = np.memmap(s.store.path(job.id, "result.raw"), dtype=DTYPES[r["depth"]], mode="r",
                       shape=(r["height"], r["width"], r["channels"]))
    data = encode_image(Picture(pixels, job.icc, fmt, s.store.read_metadata(job)), fmt)
    del pixels
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
    partial.write_bytes(data)
    os.replace(partial, target)     # two concurrent first requests both end with one whole file
    return target


async def job_result(request: web.Request) -> web.StreamResponse:
    """The result file; honours Range (206 with Content-Range, 416 past the end), as aiohttp's
    FileResponse does, so a client can fetch it in pieces without holding it whole."""
    s = _state(request)
    job = _done_job(s, request.match_info["id"])
    path = await asyncio.to_thread(_encoded_result, s, job)
    return web.FileResponse(path, headers={"Content-Type": f"image/{path.suffix[1:]}",
                                           "Accept-Ranges": "bytes"})


async def job_seams(request: web.Request) -> web.Response:
    from engine.imageio import Picture, encode_image
    s = _state(request)
    job = _done_job(s, request.match_info["id"])
    h = job.result["seams"]
    seams = np.fromfile(s.store.path(job.id, "seams.raw"), dtype=np.uint8).reshape(
        h["height"], h["width"], 1)
    data = await asyncio.to_thread(encode_image, Picture(seams, None, "png"), "png")
    return web.Response(body=data, content_type="image/png")


async def job_preview(request: web.Request) -> web.Response:
    s = _state(request)
    job = s.store.get(request.match_info["id"])
    jpeg = s.worker.previews.get(job.id)
    if jpeg is None:
        raise ProtocolError("not_found", "no preview yet", job=job.id)
    return web.Response(body=jpeg, content_type="image/jpeg")


async def job_delete(request: web.Request) -> web.Response:
    s = _state(request)
    job = s.store.get(request.match_info["id"])
    if job.state in (JobState.UPLOADING, JobState.QUEUED, JobState.RUNNING):
        s.worker.cancel(job)
        return json_response({"job": job.id, "state": job.state})
    s.release(job)
    return json_response({"job": job.id, "state": "released"})


async def pair(request: web.Request) -> web.Response:
    s = _state(request)
    body = await json_object_body(request)
    got = s.auth.redeem(body.get("code"), body.get("name", "unnamed"), request.remote)
    if got is None:
        raise ProtocolError("unauthorized", "the pairing code is wrong or expired")
    token, token_id = got
    return json_response({"token": token, "token_id": token_id})


def add_routes(app: web.Application) -> None:
    async def prepare_uploads(app: web.Application) -> None:
        state: ServerState = app["state"]
        uploads.clear_spool(state.config.data_dir)
        app[DECODE_BUDGET] = MemoryBudget(state.config.limits.decode_ram_bytes)

    app.on_startup.append(prepare_uploads)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs/{id}", job_status)
    app.router.add_get("/v1/jobs/{id}/result", job_result)
    app.router.add_get("/v1/jobs/{id}/seams", job_seams)
    app.router.add_get("/v1/jobs/{id}/preview", job_preview)
    app.router.add_delete("/v1/jobs/{id}", job_delete)
    app.router.add_post("/v1/pair", pair)
