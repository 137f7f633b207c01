"""Job events fan-out: each connection subscribes to the jobs it created or watches."""
from __future__ import annotations

from collections import defaultdict
from typing import Callable


class Hub:
    def __init__(self) -> None:
        self._subs: dict[str, set[Callable[[dict], None]]] = defaultdict(set)

    def subscribe(self, job_id: str, deliver: Callable[[dict], None]) -> None:
        self._subs[job_id].add(deliver)

    def unsubscribe(self, job_id: str, deliver: Callable[[dict], None]) -> None:
        subs = self._subs.get(job_id)
        if subs is not None:
            subs.discard(deliver)
            if not subs:
                del self._subs[job_id]

    def publish(self, job_id: str, event: dict) -> None:
        for deliver in list(self._subs.get(job_id, ())):
            deliver(event)

    def forget(self, job_id: str) -> None:
        self._subs.pop(job_id, None)
