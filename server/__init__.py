"""Seamwise server: WebSocket + HTTP API, durable job queue, pairing and LAN discovery."""
__version__ = "0.1.0"
