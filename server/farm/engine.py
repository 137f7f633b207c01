"""The worker's engine when the server fronts a Ray cluster: jobs run on render actors.

The server's worker calls `render` from one thread per running job, as it does with a local
engine, and runs as many jobs at once as there are actors (`slots`). A render takes an idle actor,
hands it the job's pixels through Ray's object store, polls its progress and forwards cancels.
If that actor (or its box) dies, Ray restarts it (max_restarts) while the job runs again on the
next idle actor; the restarted actor rejoins once it is admitted again. A frame of at least
`split_mp` output megapixels also takes every other idle actor as a helper for its tiles
(server.farm.tiles). Placement on boxes, GPUs and memory is Ray's resource accounting.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from engine.api import Cancelled, EngineError, Phase, Progress, RenderResult, Session, Unit

from . import cluster
from .actor import RenderActor

log = logging.getLogger("seamwise.farm")

POLL_S = 0.2
MAX_ATTEMPTS = 3                 # actors that may die under one job before it fails
ACTOR_MEMORY_BYTES = 1 << 30     # Ray's memory accounting per actor (the model, one job)
REJOIN_S = 600                   # how long a died actor may take to be restarted by Ray


@dataclass
class PlacedProgress(Progress):
    """Progress that says where the job runs (the worker adds it to status and events)."""
    runs_on: Optional[dict] = None


class ClusterEngine:
    def __init__(self, spec: cluster.ClusterSpec, engine: dict, split_mp: float = 40.0,
                 token_for: Callable[[Optional[str]], Optional[str]] = lambda server_id: None):
        import ray

        cluster.connect(spec)
        self.kind = engine["kind"]
        if self.kind == "identity":
            from ..engines import IdentityEngine
            self.model_name, self.recommended = "identity", IdentityEngine.recommended
        else:   # the model's name and settings come from its files: nothing loads here
            session = Session(engine["model"])
            self.model_name, self.recommended = session.name, session.recommended
        self.device, self.vram_bytes = "cpu", None
        self.split_mp = split_mp
        self.token_for = token_for
        self.slots = cluster.actor_count(spec)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        options = dict(num_cpus=0 if gpus >= self.slots else 1,
                       num_gpus=1 if gpus >= self.slots else 0,
                       memory=ACTOR_MEMORY_BYTES, max_restarts=-1, max_task_retries=0,
                       max_concurrency=4, namespace=cluster.NAMESPACE)
        head = ray.get_runtime_context().get_node_id()
        prefix = uuid.uuid4().hex[:6]
        remote = ray.remote(RenderActor)
        self.actors = [remote.options(name=f"seamwise-{prefix}-{i}", **options)
                       .remote(f"actor-{i}", engine, head) for i in range(self.slots)]
        self.where: dict[Any, dict] = {}
        self._idle: queue.Queue = queue.Queue()
        self.jobs: dict[str, dict] = {}     # running render -> where it runs

    # ---- the engine interface the worker uses -----------------------------------------------
    def recommended_map(self) -> dict:
        from ..engines import _recommended_map
        return _recommended_map(self.recommended)

    def warm_up(self) -> None:
        """Admit every actor (pairing) and load its model; an EngineError when none could."""
        import ray

        errors = []
        for actor in self.actors:
            try:
                self._admit(actor)
                self.device = ray.get(actor.warm_up.remote())
                self._idle.put(actor)
            except Exception as e:   # one bad box must not keep the others out
                errors.append(e)
                log.warning("a render actor is unavailable: %s", e)
        if len(errors) == len(self.actors):
            raise EngineError(f"no render actor could start: {errors[0]}")

    def _admit(self, actor: Any) -> None:
        import ray

        where = ray.get(actor.where.remote())
        token = None if where["head_box"] else self.token_for(where["server_id"])
        if not ray.get(actor.admit.remote(token)):
            ray.kill(actor, no_restart=True)
            raise cluster.ClusterError(f"box {where['box']} is not paired with this server; "
                                       "it runs no work (pair it, then restart)")
        self.where[actor] = {"actor": where["actor"], "box": where["box"], "node": where["node"]}

    def info(self) -> dict:
        """/v1/info's `cluster`: its size, and how many actors are busy and idle now."""
        return dict(cluster.summary(len(self.actors)), busy=len(self.jobs),
                    idle=self._idle.qsize())

    def close(self) -> None:
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass

    def render(self, image: np.ndarray, params: dict, mask: Optional[np.ndarray],
               progress: Callable[[Progress], None], should_cancel: Callable[[], bool],
               **colour) -> RenderResult:
        """`colour`: the image's `icc` profile or `profile` name, passed to the actor's engine."""
        import ray
        from ray.exceptions import ObjectLostError, OwnerDiedError, RayActorError

        key = uuid.uuid4().hex
        image_ref = ray.put(np.ascontiguousarray(image))
        mask_ref = None if mask is None else ray.put(np.ascontiguousarray(mask))
        split = self.kind == "real" and \
            image.shape[0] * image.shape[1] * params["scale"] ** 2 >= self.split_mp * 1e6
        try:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                actor = self._next_idle(should_cancel)
                helpers = self._take_idle() if split else []
                try:
                    return self._run_on(actor, helpers, key, attempt, image_ref, params,
                                        mask_ref, progress, should_cancel, colour)
                except (RayActorError, ObjectLostError, OwnerDiedError) as e:
                    log.warning("job %s: %s died (%s); running it again elsewhere", key,
                                self.where.get(actor, {}).get("actor"), type(e).__name__)
                    threading.Thread(target=self._rejoin, args=(actor,), daemon=True).start()
                    actor = None
                finally:
                    for a in ([actor] if actor is not None else []) + helpers:
                        self._idle.put(a)
            raise EngineError(f"the render actors died {MAX_ATTEMPTS} times under this job")
        finally:
            self.jobs.pop(key, None)

    # ---- pieces --------------------------------------------------------------------------------
    def _next_idle(self, should_cancel: Callable[[], bool]) -> Any:
        """The next idle actor; a job cancelled (or drained) while it waits for one ends."""
        while True:
            try:
                return self._idle.get(timeout=POLL_S)
            except queue.Empty:
                if should_cancel():
                    raise Cancelled("render cancelled") from None

    def _take_idle(self) -> list:
        taken = []
        while True:
            try:
                taken.append(self._idle.get_nowait())
            except queue.Empty:
                return taken

    def _rejoin(self, actor: Any) -> None:
        """A died actor comes back when Ray has restarted it and it is admitted again."""
        from ray.exceptions import ActorUnavailableError

        deadline = time.monotonic() + REJOIN_S
        while True:
            try:
                self._admit(actor)
                break
            except ActorUnavailableError:     # still restarting
                if time.monotonic() > deadline:
                    log.warning("a render actor was not restarted within %d s", REJOIN_S)
                    return
                time.sleep(1.0)
            except Exception as e:
                log.warning("a restarted render actor did not rejoin: %s", e)
                return
        self._idle.put(actor)

    def _run_on(self, actor, helpers, key, attempt, image_ref, params, mask_ref, progress,
                should_cancel, colour: dict) -> RenderResult:
        import ray

        runs_on = dict(self.where.get(actor, {}), attempt=attempt,
                       helpers=[self.where.get(h, {}).get("actor") for h in helpers])
        self.jobs[key] = runs_on
        progress(PlacedProgress(Phase.LOAD, 0, params["steps"], 0, 0, 0.0, runs_on=runs_on))
        ref = actor.render.remote(key, image_ref, params, mask_ref, helpers, colour)
        cancelled = False
        last_preview = 0.0
        while not ray.wait([ref], timeout=POLL_S)[0]:
            if should_cancel() and not cancelled:
                actor.cancel.remote(key)
                cancelled = True
            want = time.monotonic() - last_preview >= 0.5
            fields, preview = ray.get(actor.poll.remote(key, want))
            if fields:
                p = PlacedProgress(Phase(fields["phase"]), fields["step"], fields["steps"],
                                   fields["tile"], fields["tiles"], fields["fraction"],
                                   None, Unit(fields["unit"]), runs_on=runs_on)
                if preview is not None:
                    last_preview = time.monotonic()
                    p.preview = lambda a=preview: a
                progress(p)
        outcome = ray.get(ref)
        if outcome[0] == "cancelled":
            raise Cancelled("render cancelled")
        if outcome[0] == "failed":
            raise EngineError(outcome[1])
        _, out, seams, stats = outcome
        stats["runs_on"] = runs_on
        return RenderResult(np.asarray(out), np.asarray(seams), stats)
