"""Tiling: where the windows of a canvas are (strategies) and how their outputs are weighted
when fused (windows). Pure functions over integers and small tensors; no model runs here."""
