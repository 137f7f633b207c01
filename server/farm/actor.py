"""The render actor: one model kept loaded on one GPU (or CPU slot) of a cluster box.

A plain class; server.farm.pool wraps it with ray.remote and the resources it needs. It runs
several calls at once (threads): one render, the front's progress polls and cancels, and tile
groups of a frame that another actor leads. Its answers are plain values and numpy arrays, which
Ray keeps in its object store.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Optional

import numpy as np

from engine.api import Cancelled, EngineError, Progress

from ..engines import make_engine
from .pairing import BoxGate
from .tiles import TileFarm

PREVIEW_INTERVAL_S = 0.5


class RenderActor:
    def __init__(self, name: str, engine: dict, head_node: str):
        import ray

        self.name = name
        self.node = ray.get_runtime_context().get_node_id()
        self.box = socket.gethostname()
        self.gate = BoxGate(self.node == head_node)
        self.engine = make_engine(**engine)
        self._progress: dict[str, dict] = {}
        self._previews: dict[str, Any] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._share: tuple[Optional[str], Any] = (None, None)

    # ---- who and where ---------------------------------------------------------------------
    def where(self) -> dict:
        return {"actor": self.name, "box": self.box, "node": self.node[:12],
                "server_id": self.gate.server_id, "head_box": self.gate.head_box}

    def admit(self, token: Optional[str]) -> bool:
        """The head proves it is paired with this box (the head's own box needs no proof)."""
        return self.gate.admit(token)

    def warm_up(self) -> str:
        self.gate.check()
        self.engine.warm_up()
        return self.engine.device

    # ---- one job ---------------------------------------------------------------------------
    def render(self, key: str, image: np.ndarray, params: dict, mask: Optional[np.ndarray],
               helpers: list, colour: Optional[dict] = None) -> tuple:
        """("done", image, seam_risk, stats) | ("cancelled",) | ("failed", message).
        `colour`: the image's `icc` profile or `profile` name (engine.colour)."""
        self.gate.check()
        cancel = self._cancels[key] = threading.Event()
        farm = TileFarm(self, helpers) if helpers else None
        options = dict(colour or {}, **({"tile_runner": farm} if farm is not None else {}))
        try:
            out = self.engine.render(image, params, mask, self._reporter(key), cancel.is_set,
                                     **options)
        except Cancelled:
            return ("cancelled",)
        except EngineError as e:
            return ("failed", str(e))
        except MemoryError:
            return ("failed", "the render box ran out of memory for this image")
        finally:
            self._cancels.pop(key, None)
            self._progress.pop(key, None)
            self._previews.pop(key, None)
        if cancel.is_set():
            return ("cancelled",)
        stats = dict(out.stats or {})
        if farm is not None:
            stats["farm"] = farm.stats()
        return ("done", np.asarray(out.image), np.asarray(out.seam_risk), stats)

    def poll(self, key: str, want_preview: bool) -> tuple[Optional[dict], Optional[np.ndarray]]:
        """The latest progress fields of a render, and a preview when asked and one is ready."""
        preview = None
        make = self._previews.pop(key, None) if want_preview else None
        if make is not None:
            try:
                preview = make()
            except Exception:   # a preview is a courtesy; never fail the poll for it
                preview = None
        return self._progress.get(key), preview

    def cancel(self, key: str) -> None:
        flag = self._cancels.get(key)
        if flag is not None:
            flag.set()

    def _reporter(self, key: str):
        state = {"preview_at": 0.0}

        def on_progress(p: Progress) -> None:
            self._progress[key] = {"phase": str(p.phase), "step": int(p.step),
                                   "steps": int(p.steps), "tile": int(p.tile),
                                   "tiles": int(p.tiles), "unit": str(p.unit),
                                   "fraction": float(p.fraction)}
            now = time.monotonic()
            if p.preview is not None and now - state["preview_at"] >= PREVIEW_INTERVAL_S:
                state["preview_at"] = now
                self._previews[key] = p.preview
        return on_progress

    # ---- tiles of a frame another actor leads ------------------------------------------------
    def evaluate_tiles(self, share_ref: list, canvas: np.ndarray, work: Any,
                       indices: list[int]) -> tuple[list[np.ndarray], float]:
        """x0 of batches `indices` of one step, and the seconds they took. The render's share
        arrives once per render (wrapped in a list, so Ray hands over the reference unread)."""
        import ray

        self.gate.check()
        started = time.perf_counter()
        key = share_ref[0].hex()
        if self._share[0] != key:
            self._share = (key, ray.get(share_ref[0]))
        out = self.engine.session.evaluate_tiles(self._share[1], canvas, work, indices)
        return out, time.perf_counter() - started
