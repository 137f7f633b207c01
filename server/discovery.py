"""LAN discovery with zeroconf (mDNS/DNS-SD): advertise in LAN mode, always browse.

The advertisement carries only public facts (protocol, model, device, version and a random
server id), never a token. A Photoshop panel cannot do mDNS itself, so the server it talks to
lists what it finds at GET /v1/peers.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Optional

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger("seamwise.discovery")

SERVICE_TYPE = "_seamwise._tcp.local."


def local_ipv4_addresses() -> list[str]:
    import ifaddr
    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and not ip.ip.startswith("169.254."):
                out.append(ip.ip)
    return out


def _text(props: dict, key: str) -> Optional[str]:
    value = props.get(key.encode())
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


class Discovery:
    """One AsyncZeroconf instance: our own advertisement and a browser for the others."""

    def __init__(self, server_id: str, name: str, txt: dict, interfaces: Optional[list[str]]):
        self.server_id = server_id
        self.name = name
        self.txt = dict(txt, id=server_id)
        self.interfaces = interfaces
        self.found: dict[str, dict] = {}     # peer id -> description
        self._names: dict[str, str] = {}     # service name -> peer id
        self._zc: Optional[AsyncZeroconf] = None
        self._browser: Optional[AsyncServiceBrowser] = None
        self._info: Optional[AsyncServiceInfo] = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, advertise_port: Optional[int], host: str) -> None:
        kwargs = {"ip_version": IPVersion.V4Only}
        if self.interfaces:
            kwargs["interfaces"] = self.interfaces
        self._zc = AsyncZeroconf(**kwargs)
        if advertise_port is not None:
            if host in ("0.0.0.0", ""):
                addresses = self.interfaces or local_ipv4_addresses()
            else:
                addresses = [host]
            label = f"{self.name} ({self.server_id[:6]})"[:63]
            self._info = AsyncServiceInfo(
                SERVICE_TYPE, f"{label}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(a) for a in addresses], port=advertise_port,
                properties=self.txt, server=f"seamwise-{self.server_id[:12]}.local.")
            await (await self._zc.async_register_service(self._info))
            log.info("advertising %s on %s:%d", label, ",".join(addresses), advertise_port)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, [SERVICE_TYPE],
                                            handlers=[self._on_change])

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            if self._info is not None:
                await self._zc.async_unregister_service(self._info)
            await self._zc.async_close()

    def _on_change(self, zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            peer_id = self._names.pop(name, None)
            if peer_id:
                self.found.pop(peer_id, None)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            return
        props = info.properties or {}
        peer_id = _text(props, "id")
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not peer_id or peer_id == self.server_id or not addresses or not info.port:
            return
        self._names[name] = peer_id
        self.found[peer_id] = {
            "id": peer_id, "name": name[:-len(SERVICE_TYPE) - 1], "address": addresses[0],
            "port": info.port, "protocol": int(_text(props, "protocol") or 0),
            "model": _text(props, "model"), "device": _text(props, "device"),
            "version": _text(props, "version")}
