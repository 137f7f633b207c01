"""Memory mechanisms that link tiles of one canvas, each a small switchable piece.

Switches (RenderParams.mechanisms, defaults in `Mechanisms`): halo (0, in the `memory` plan),
noise field (1, structural: the sampler steps one canvas), thumbnail pass (2), GroupNorm
statistics (3), attention key/value bank (4), low-frequency anchoring (5), position (6).
"""
from engine.mechanisms.switches import Mechanisms

__all__ = ["Mechanisms"]
