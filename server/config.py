"""Server configuration and the limits every request is checked against before allocation."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MiB = 1024 * 1024
PROTOCOL_VERSION = 1
DEFAULT_PORT = 7821


def default_decode_ram_bytes() -> int:
    """Half of physical RAM: what image decodes may hold at once, leaving room for renders."""
    import psutil
    return psutil.virtual_memory().total // 2


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 200_000_000
    max_side: int = 65_535
    max_chunk_bytes: int = 4 * MiB
    message_overhead: int = 64 * 1024
    window: int = 4
    max_queued: int = 64
    max_queued_per_client: int = 16    # unfinished jobs of one token, or of one tokenless socket
    upload_idle_s: float = 600.0       # an upload without a chunk for this long fails
    idle_timeout_s: float = 30.0       # a connection without a complete request header is closed
    retention_s: float = 24 * 3600.0
    max_http_body_bytes: int = 4096 * MiB     # POST /v1/jobs only, streamed to disk
    max_json_body_bytes: int = 64 * 1024      # every other request body
    max_icc_bytes: int = 4 * MiB
    max_metadata_bytes: int = 16 * MiB        # inflated XMP/EXIF/IPTC of an uploaded file
    decode_ram_bytes: int = field(default_factory=default_decode_ram_bytes)

    @property
    def max_message_bytes(self) -> int:
        return self.max_chunk_bytes + self.message_overhead

    def public(self) -> dict:
        return {"max_pixels": self.max_pixels, "max_side": self.max_side,
                "max_chunk_bytes": self.max_chunk_bytes,
                "max_message_bytes": self.max_message_bytes, "window": self.window,
                "max_queued": self.max_queued,
                "max_queued_per_client": self.max_queued_per_client,
                "upload_idle_s": self.upload_idle_s, "idle_timeout_s": self.idle_timeout_s,
                "retention_s": self.retention_s,
                "max_http_body_bytes": self.max_http_body_bytes,
                "max_json_body_bytes": self.max_json_body_bytes,
                "max_icc_bytes": self.max_icc_bytes, "max_metadata_bytes": self.max_metadata_bytes,
                "decode_ram_bytes": self.decode_ram_bytes}


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    lan: bool = False
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    model: str = "tiny"
    engine: str = "real"               # "real" or "identity"
    identity_delay: float = 0.0        # seconds per step of the identity engine
    layerwise: Optional[str] = None    # whole-frame evaluation: "auto" | "off"; None: the model's
    layerwise_ram_gib: Optional[float] = None   # whole-frame evaluation's RAM; None: a quarter
    allow_origins: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()  # names clients may use in Host in LAN mode (--allow-host)
    limits: Limits = field(default_factory=Limits)
    discovery: bool = True             # advertise (LAN mode) and browse with zeroconf
    discovery_interfaces: Optional[list[str]] = None
    name: Optional[str] = None         # instance name advertised on the LAN
    cluster: Optional[str] = None      # "local[:N]", "auto" or "ray://HOST:PORT" (docs/FARM.md)
    actors: Optional[int] = None       # cluster: render actors (None: per GPU, else per box)
    split_mp: float = 40.0             # cluster: output MP from which a frame spreads over actors


def default_data_dir() -> Path:
    """Per-user application data, where the platform expects it."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "Seamwise"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Seamwise"
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "seamwise"
