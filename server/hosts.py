"""Which `Host` header values this server answers: the defence against DNS rebinding.

A web page whose name an attacker re-points at 127.0.0.1 (or at a LAN box) is same-origin with
the server as far as the browser knows, but its requests still carry the attacker's name in
`Host`. Bound to loopback the server answers only loopback names and addresses; in LAN mode it
also answers IP literals (a browser that uses one is on the server's own origin, not a rebound
name), this machine's host name (with and without `.local`) and the names given with
`--allow-host`.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Optional

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "localhost.localdomain"})


def host_name(header: str) -> str:
    """The name or address of a Host header, without port and brackets, lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value


def _ip(name: str) -> Optional[ipaddress._BaseAddress]:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostCheck:
    def __init__(self, lan: bool, allow_hosts: tuple[str, ...]):
        self.lan = lan
        names = set(LOOPBACK_NAMES) | {h.strip().lower().rstrip(".") for h in allow_hosts}
        if lan:
            own = (socket.gethostname() or "").lower().rstrip(".")
            if own:
                short = own.split(".", 1)[0]
                names |= {own, short, short + ".local"}
        self.names = frozenset(names)

    def allowed(self, header: Optional[str]) -> bool:
        if header is None:          # HTTP/1.0 without Host: not a browser
            return True
        name = host_name(header)
        ip = _ip(name)
        if ip is not None:
            return self.lan or ip.is_loopback
        return name in self.names or name.rstrip(".") in self.names
