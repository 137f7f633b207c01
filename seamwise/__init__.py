"""Seamwise: seamless tiled diffusion for very large photographs."""
__version__ = "0.1.0"
