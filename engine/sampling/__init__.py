"""Sampling: one diffusers scheduler stepping the whole canvas, and the canvas-wide noise field.

The sampler never sees tiles: it calls a canvas denoiser (engine.denoise) once per step.
"""
