"""The decode budget: holders that do not fit together take turns; one that never fits is
refused."""
from __future__ import annotations

import asyncio

import pytest

from server.budget import MemoryBudget
from server.errors import ProtocolError


def test_memory_budget_serialises_what_does_not_fit_together():
    async def go():
        budget = MemoryBudget(10)
        events = []

        async def decode(name: str, nbytes: int, seconds: float) -> None:
            async with budget.hold(nbytes):
                events.append(("in", name, budget.used))
                await asyncio.sleep(seconds)
            events.append(("out", name))

        await asyncio.gather(decode("a", 6, 0.05), decode("b", 6, 0), decode("c", 4, 0))
        assert events[:2] == [("in", "a", 6), ("in", "c", 10)]
        assert events.index(("in", "b", 6)) > events.index(("out", "a"))
        assert budget.used == 0
        with pytest.raises(ProtocolError) as err:
            async with budget.hold(11, "this upload"):
                pass
        assert err.value.code == "too_large" and "this upload" in err.value.message

    asyncio.run(go())
