"""Neighbour context (mechanism 0) lives in the `memory` window plan: see
engine.tiling.strategies.Strategy.plan ("memory") and engine.tiling.windows.with_halo / profile_1d("feather").
This module only states the rule the plan follows, so the ablation switch has one home."""
from __future__ import annotations


def halo_for(overlap: int, enabled: bool) -> int:
    """Canvas px of live context around each core: half the overlap between windows, or none."""
    return overlap // 2 if enabled else 0
