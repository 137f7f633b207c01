"""One frame across actors: each step's tile batches split into groups, one per actor.

Runs inside the actor that leads the frame (engine.api's tile_runner). Per step the canvas goes
into Ray's object store once; each helper reads it there, evaluates its group of batches and
returns their x0; the leader evaluates the first group itself meanwhile. The engine fuses the
outputs in plan order, so the result is bit-identical to one process. A helper that dies
mid-step has its group evaluated by the leader instead: the step still completes, same bits.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

log = logging.getLogger("seamwise.farm")


def groups(batches: int, parts: int) -> list[range]:
    """`batches` split into `parts` contiguous, nearly equal groups (some may be empty)."""
    edges = [round(i * batches / parts) for i in range(parts + 1)]
    return [range(edges[i], edges[i + 1]) for i in range(parts)]


class TileFarm:
    def __init__(self, leader: Any, helpers: Sequence[Any]):
        self.leader, self.helpers = leader, list(helpers)
        self._share_ref = None
        self._share_of = None
        self.steps = 0
        self.exchange_bytes = 0
        self.exchange_s = 0.0          # step wall time beyond the slowest group's compute
        self.compute_s = 0.0
        self.helper_failures = 0

    def __call__(self, share: Any, canvas: np.ndarray, work: Any) -> list:
        import ray
        from ray.exceptions import RayActorError

        started = time.perf_counter()
        if self._share_of is not share:
            self._share_ref, self._share_of = ray.put(share), share
        canvas_ref = ray.put(canvas)
        parts = groups(work.batches, len(self.helpers) + 1)
        calls = [(h, g, h.evaluate_tiles.remote([self._share_ref], canvas_ref, work, list(g)))
                 for h, g in zip(self.helpers, parts[1:]) if len(g)]
        t0 = time.perf_counter()
        out: list = [None] * work.batches
        mine = self.leader.engine.session.evaluate_tiles(share, canvas, work, parts[0])
        slowest = time.perf_counter() - t0
        for i, x0 in zip(parts[0], mine):
            out[i] = x0
        for helper, group, ref in calls:
            try:
                arrays, seconds = ray.get(ref)
                out[group.start:group.stop] = arrays
                self.exchange_bytes += canvas.nbytes + sum(a.nbytes for a in arrays)
                slowest = max(slowest, seconds)
            except RayActorError:
                self.helper_failures += 1
                log.warning("a helper died during step %d; its tiles run on the leader",
                            work.step)
                t0 = time.perf_counter()
                out[group.start:group.stop] = self.leader.engine.session.evaluate_tiles(
                    share, canvas, work, group)
                slowest += time.perf_counter() - t0
        wall = time.perf_counter() - started
        self.steps += 1
        self.compute_s += slowest
        self.exchange_s += max(0.0, wall - slowest)
        return out

    def stats(self) -> dict:
        """What the split cost, for the job's statistics and the benchmark."""
        return {"helpers": len(self.helpers), "steps": self.steps,
                "exchange_bytes": self.exchange_bytes, "exchange_s": round(self.exchange_s, 4),
                "compute_s": round(self.compute_s, 4), "helper_failures": self.helper_failures}
