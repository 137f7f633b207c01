"""Per-mechanism switches of the `memory` strategy (RenderParams.mechanisms), for ablation."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace


def physical_ram() -> int:
    """Bytes of RAM in this machine (Linux and macOS); 16 GiB where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


@dataclass(frozen=True)
class Mechanisms:
    halo: bool = True            # 0: evaluate each core with a margin of live canvas
    thumbnail: bool = False      # 2: scene-memory pass at native size (needed by its consumers)
    groupnorm: str = "off"       # 3: "off" | "thumbnail" | "previous" | "iterate" | "exact"
    gn_passes: int = 2           #    "iterate": passes over the tiles per step (last one fused)
    gn_every: int = 1            #    "iterate": statistics passes visit every n-th tile
    layerwise: str = "off"       # 3, exactly: "off" | "on" | "auto": the whole canvas one layer
                                 #    at a time (exact statistics, halos and attention); "auto":
                                 #    when its activations fit layerwise_ram_gib, else tiles
    layerwise_ram_gib: float | None = None  # host RAM for whole-canvas activations ("on"
                                 #    spills beyond); None: a quarter of the machine's RAM
    layerwise_storage: str = "auto"  # "full" (the model's dtype) | "float16" | "auto": float16
                                 #    only where full precision would not fit the budget
    kv_bank: bool = False        # 4: self-attention also attends to pooled thumbnail keys/values
    kv_pool: int = 2             #    pooling of the bank (tokens per side)
    anchor: str = "off"          # 5: "off" | "input" | "thumbnail": low-frequency reference
    anchor_scale: int = 16       #    canvas px below which detail belongs to the tiles
    anchor_strength: float = 1.0
    position: bool = True        # 6: tell the tile where it sits (SDXL crop/size ids)
    feather: float = 0.5         # halo band used for feathering, as a fraction of the halo

    @classmethod
    def from_dict(cls, values: dict | None) -> "Mechanisms":
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown mechanism switch(es): {', '.join(unknown)}; "
                             f"known: {', '.join(known)}")
        if isinstance(values.get("layerwise"), bool):     # JSON clients may say true/false
            values["layerwise"] = "on" if values["layerwise"] else "off"
        m = replace(cls(), **values)
        if m.groupnorm not in ("off", "thumbnail", "previous", "iterate", "exact"):
            raise ValueError("mechanisms.groupnorm must be 'off', 'thumbnail', 'previous', "
                             "'iterate' or 'exact'")
        if m.gn_passes < 1 or m.gn_every < 1:
            raise ValueError("mechanisms.gn_passes and gn_every must be >= 1")
        if m.anchor not in ("off", "input", "thumbnail"):
            raise ValueError("mechanisms.anchor must be 'off', 'input' or 'thumbnail'")
        if m.layerwise not in ("off", "on", "auto"):
            raise ValueError("mechanisms.layerwise must be 'off', 'on' or 'auto'")
        if m.layerwise == "on" and (m.groupnorm != "off" or m.kv_bank):
            raise ValueError("mechanisms.layerwise already gives every GroupNorm and attention layer the "
                             "whole canvas: leave groupnorm 'off' and kv_bank false")
        if m.layerwise_storage not in ("auto", "full", "float16"):
            raise ValueError("mechanisms.layerwise_storage must be 'auto', 'full' or 'float16'")
        if m.layerwise_ram_gib is not None and not m.layerwise_ram_gib >= 0:
            raise ValueError("mechanisms.layerwise_ram_gib must be >= 0")
        if m.kv_pool < 1 or m.anchor_scale < 1 or not 0 <= m.feather <= 1:
            raise ValueError("mechanisms: kv_pool and anchor_scale must be >= 1, feather in 0..1")
        return m

    @property
    def layerwise_ram_bytes(self) -> int:
        if self.layerwise_ram_gib is not None:
            return int(self.layerwise_ram_gib * (1 << 30))
        return physical_ram() // 4

    @property
    def needs_thumbnail(self) -> bool:
        return (self.thumbnail or self.groupnorm == "thumbnail" or self.kv_bank
                or self.anchor == "thumbnail")
