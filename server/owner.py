"""The box owner's door: `seamwise jobs` lists and cancels every job through it.

At start the server writes `owner.json` (its URL and a fresh random secret, mode 0600) into its
data directory, which only the account running the server can read. A request under /v1/admin/
must carry that secret in `X-Seamwise-Owner` and no `Origin` (no web page, whatever it knows).
Paired tokens never open this door: a paired client may use the box, not manage other clients'
jobs.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Optional

from aiohttp import web

from .errors import ProtocolError

OWNER_FILE = "owner.json"
ADMIN_PREFIX = "/v1/admin/"
HEADER = "X-Seamwise-Owner"


class OwnerKey:
    def __init__(self, data_dir: Path):
        self.path = data_dir / OWNER_FILE
        self.secret = secrets.token_urlsafe(32)

    def publish(self, host: str, port: int) -> None:
        """Write the URL and secret where `seamwise jobs` finds them (owner-only file)."""
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": url, "secret": self.secret}, f)
        os.replace(tmp, self.path)

    def withdraw(self) -> None:
        self.path.unlink(missing_ok=True)

    def check(self, request: web.Request) -> None:
        given = request.headers.get(HEADER, "")
        if request.headers.get("Origin") is not None or \
                not hmac.compare_digest(given.encode(), self.secret.encode()):
            raise ProtocolError("unauthorized", "owner commands need the secret in the server's "
                                                "data directory (use `seamwise jobs`)")


def read_owner_file(data_dir: Path) -> Optional[dict]:
    try:
        return json.loads((data_dir / OWNER_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


async def list_jobs(request: web.Request) -> web.Response:
    state = request.app["state"]
    names = {t["id"]: t["name"] for t in state.auth.list()}
    jobs = []
    for job in sorted(state.store.jobs.values(), key=lambda j: j.seq):
        row = state.status_json(job)
        row.update(created=job.created, updated=job.updated, source=job.source,
                   width=job.image["width"], height=job.image["height"],
                   bytes=job.image["bytes"], owner=names.get(job.owner, job.owner))
        jobs.append(row)
    return web.json_response({"jobs": jobs})


async def cancel_job(request: web.Request) -> web.Response:
    state = request.app["state"]
    job = state.store.get(request.match_info["id"])
    state.cancel_job(job)
    return web.json_response({"job": job.id, "state": job.state})


def add_routes(app: web.Application) -> None:
    app.router.add_get(ADMIN_PREFIX + "jobs", list_jobs)
    app.router.add_post(ADMIN_PREFIX + "jobs/{id}/cancel", cancel_job)
