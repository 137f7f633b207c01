"""The VAE stage of latent models: encode and decode frames of any size in tiles.

`tiled` is the front end (exact mode runs the VAE layerwise through engine.layerwise; fast mode,
`fast`, runs each tile through the whole network with statistics from a thumbnail)."""
