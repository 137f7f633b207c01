"""Post-processing of a rendered frame that keeps it faithful to the input (consistency.py)."""
