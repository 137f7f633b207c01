"""Running a convolutional network one whole-image operation at a time, tile by tile.

Every GroupNorm gets exact whole-image statistics, every convolution a halo exactly one kernel
wide, self-attention the whole image (or a documented far-field bank): the result equals the
full-frame network's up to summation order, in memory set by the tile. Used by the tiled VAE
(engine.vae.tiled) and by the denoiser's layerwise mechanism (engine.layerwise.unet).
"""
