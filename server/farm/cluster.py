"""Starting or joining the Ray cluster behind `seamwise serve --cluster`, and what it holds.

`local[:N]` starts a Ray cluster inside this process, bound to loopback, sized for N actors;
`auto` joins the cluster named by RAY_ADDRESS; `ray://HOST:PORT` joins through Ray Client.
Every failure to get a cluster is one ClusterError whose message says what to do.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import Optional

NAMESPACE = "seamwise"
DEFAULT_OBJECT_STORE_BYTES = 512 << 20   # local clusters: pixels in flight, not whole queues


class ClusterError(Exception):
    """The cluster could not be started or joined (or Ray is not installed)."""


@dataclass(frozen=True)
class ClusterSpec:
    address: Optional[str]       # None: start a local cluster; "auto"; "ray://host:port"
    actors: Optional[int]        # None: one per GPU (local: or 1 on a CPU-only machine)

    @property
    def local(self) -> bool:
        return self.address is None


_LOCAL = re.compile(r"local(?::([0-9]{1,3}))?")
_RAY = re.compile(r"ray://[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")


def parse_cluster(text: str, actors: Optional[int] = None) -> ClusterSpec:
    """`local`, `local:N`, `auto` or `ray://HOST:PORT`, with `actors` (--actors) for a joined
    cluster; ValueError says what is wrong."""
    if actors is not None and not 1 <= actors <= 256:
        raise ValueError("--actors needs 1 <= N <= 256")
    m = _LOCAL.fullmatch(text)
    if m:
        n = int(m.group(1)) if m.group(1) else actors
        if n is not None and not 1 <= n <= 256:
            raise ValueError("local:N needs 1 <= N <= 256 actors")
        return ClusterSpec(None, n)
    if text == "auto" or _RAY.fullmatch(text):
        return ClusterSpec(text, actors)
    raise ValueError(f"--cluster takes local, local:N, auto or ray://HOST:PORT, not {text!r}")


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise ClusterError("--cluster needs Ray: install the cluster extra "
                           "(pip install 'seamwise[cluster]')") from e
    return ray


def connect(spec: ClusterSpec, object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES) -> None:
    """Start or join the cluster (once per process; a driver already connected is kept)."""
    ray = import_ray()
    if ray.is_initialized():
        return
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        # Ray's ports listen on every interface, even for a local cluster: without its token
        # anyone on the network could run code on every box
        raise ClusterError("refusing Ray without token authentication (RAY_AUTH_MODE=disabled): "
                           "its ports listen on every interface (docs/FARM.md)")
    common = dict(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False,
                  logging_level="WARNING")
    try:
        if spec.local:
            # GPUs as Ray detects them; CPUs at least one per actor asked for
            # address="local": always a new cluster, never one a stale session file names
            ray.init(address="local", num_cpus=max(spec.actors or 1, os.cpu_count() or 1),
                     object_store_memory=object_store_bytes, _node_ip_address="127.0.0.1",
                     **common)
        elif spec.address == "auto":
            address = os.environ.get("RAY_ADDRESS", "")
            if not address:
                raise ClusterError("--cluster auto joins the cluster named by RAY_ADDRESS, "
                                   "which is not set")
            _answers(address)
            ray.init(address="auto", **common)
        else:
            _answers(spec.address)
            ray.init(address=spec.address, **common)
    except ClusterError:
        raise
    except Exception as e:     # Ray raises many kinds: each is the same to the user
        where = "start a local Ray cluster" if spec.local else f"join the Ray cluster at " \
                                                               f"{spec.address}"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"could not {where}: {first}") from e


def actor_count(spec: ClusterSpec) -> int:
    """How many render actors: N when asked, else one per GPU, else one per node."""
    if spec.actors:
        return spec.actors
    ray = import_ray()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    return gpus or max(1, len([n for n in ray.nodes() if n.get("Alive")]))


def summary(actors: int) -> dict:
    """/v1/info's and doctor's `cluster`: backend, actors, GPUs and live nodes."""
    ray = import_ray()
    return {"backend": "ray", "actors": actors,
            "gpus": int(ray.cluster_resources().get("GPU", 0)),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}



def _answers(address: str, timeout: float = 3.0) -> None:
    """Fail at once when nothing listens at the cluster's address (Ray itself would retry for
    minutes before saying so)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ClusterError(f"nothing answers at {hostport} (is the cluster's head running, "
                           f"and its port open to this machine?): {e}") from None
