"""Tiled VAE encode/decode that matches the full-frame VAE; the public API is engine.vae_tiled."""
