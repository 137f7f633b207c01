"""Denoising one step of the whole canvas: the canvas denoiser, which evaluates the model in
tiles (with the memory mechanisms plugged in) or over the whole frame layer by layer, fuses the
result and keeps the seam-risk bookkeeping."""
