"""What `seamwise doctor` and the server's /v1/info report: the facts a user (or the panel, when
it cannot render) needs to see why, each problem with one line of advice.

`gather` collects; `advise` turns facts into advice and is a pure function of them, so every
rule is tested without a broken machine.
"""
from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from seamwise import __version__

GiB = 1024 ** 3
LOW_DISK = 20 * GiB     # an SD render at 20 MP spills about 19 GiB (README, docs/VAE.md)
LOW_RAM = 2 * GiB
INSTALL_MANIFEST = "install.json"


def install_record() -> Optional[dict]:
    """What the installer recorded (PREFIX/install.json, next to PREFIX/venv), if it installed
    this copy; None for a development checkout."""
    try:
        return json.loads((Path(sys.prefix).parent / INSTALL_MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _free_disk(path: Path) -> Optional[int]:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def machine_facts(data_dir: Path) -> dict:
    """Torch build, the device a render would use, free memory on it and on the host, free disk."""
    import psutil

    facts: dict = {"ram_total_bytes": psutil.virtual_memory().total,
                   "ram_free_bytes": psutil.virtual_memory().available,
                   "data_dir": str(data_dir), "disk_free_bytes": _free_disk(data_dir)}
    try:
        from engine.api import torch_facts
        facts.update(torch_facts())
    except Exception as e:  # a broken install: the one fact worth reporting
        return {**facts, "torch": None, "torch_error": str(e), "backend": None, "device": None}
    return facts


def server_facts(port: int, timeout: float = 2.0) -> dict:
    """Whether a server answers on 127.0.0.1:port, and what it says about itself."""
    url = f"http://127.0.0.1:{port}/v1/info"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            info = json.loads(response.read())
        return {"port": port, "answers": True, "info": info}
    except urllib.error.HTTPError as e:  # a LAN box answers 401 without a token
        return {"port": port, "answers": True, "status": e.code}
    except (OSError, ValueError) as e:
        return {"port": port, "answers": False, "error": str(getattr(e, "reason", e))}


def plugin_facts(record: Optional[dict]) -> dict:
    """Each plugin as found on disk, else as the installer left it (e.g. packaged on Linux)."""
    from seamwise import plugins
    from seamwise.models import places

    where = places()
    recorded = (record or {}).get("plugins", {})
    found = {"photoshop": plugins.find_photoshop(where), "lightroom": plugins.find_lightroom(where)}
    return {name: found[name] or recorded.get(name) or {"installed": False}
            for name in ("photoshop", "lightroom")}


def model_facts(data_dir: Path) -> dict:
    from seamwise import models as mm

    try:
        registry = mm.Registry.load(data_dir)
    except mm.ModelError as e:
        return {"error": str(e)}
    listed = mm.discover(registry)
    chosen = mm.default_model(registry, models=listed)
    wanted = mm.find(listed, registry.default)
    return {"default": chosen.public(), "served_name": chosen.served_name, "count": len(listed),
            "supported": sum(m.supported for m in listed),
            "missing_default": registry.default if wanted is None else None}


def advise(f: dict) -> list[str]:
    """One line per problem found, each saying what to do about it."""
    out = []
    m, s = f.get("machine", {}), f.get("server", {})
    if m.get("torch") is None:
        out.append(f"PyTorch does not import ({m.get('torch_error')}): run the installer again")
    install = f.get("install") or {}
    if install.get("backend") in ("cuda", "rocm") and m.get("backend") == "cpu":
        out.append(f"installed for {install['backend']} but rendering on the CPU: the GPU driver "
                   "is missing or too old; update it, or reinstall with --backend cpu")
    free_disk = m.get("disk_free_bytes")
    if free_disk is not None and free_disk < LOW_DISK:
        out.append(f"only {free_disk / GiB:.1f} GiB free under {m.get('data_dir')}: large SD/SDXL "
                   "renders spill to disk; free space or point TMPDIR at a larger disk")
    if m.get("ram_free_bytes", LOW_RAM) < LOW_RAM:
        out.append(f"only {m['ram_free_bytes'] / GiB:.1f} GiB of RAM free: close other programs "
                   "before rendering large photographs")
    if s and not s.get("answers"):
        out.append(f"no server answers on port {s.get('port')}: start it with `seamwise serve` "
                   "(the installer's login service does this) or check that nothing else holds "
                   "the port")
    elif s.get("status") == 401:
        out.append(f"the server on port {s.get('port')} is a LAN render box: pair this machine "
                   "with `seamwise pair` on it")
    models = f.get("models", {})
    if models.get("error"):
        out.append(models["error"])
    elif models.get("missing_default"):
        out.append(f"the default model {models['missing_default']} is no longer found (moved or "
                   "deleted?): pick another with `seamwise models default`")
    running = (s.get("info") or {}).get("model")
    expected = models.get("served_name")
    if running and expected and running not in (expected, "identity"):
        out.append(f"the server runs {running} but the default model is {expected}: restart the "
                   "server to switch")
    for name, label in (("photoshop", "Photoshop panel"), ("lightroom", "Lightroom plugin")):
        if name not in f.get("plugins", {}):
            continue
        plugin = f["plugins"][name]
        if plugin.get("state") == "opened":
            out.append(f"the {label} was handed to Creative Cloud: {plugin.get('next', '')}")
        elif not plugin.get("installed") and plugin.get("state") != "packaged" \
                and f.get("platform") != "linux":
            out.append(f"the {label} is not installed: run the installer again (without "
                       "--no-plugins)")
        elif plugin.get("version") and plugin["version"] != __version__:
            out.append(f"the {label} is version {plugin['version']}, the server {__version__}: "
                       "run the installer again so both match")
    return out


def gather(data_dir: Path, port: int) -> dict:
    record = install_record()
    facts = {"version": __version__, "platform": sys.platform, "python": sys.version.split()[0],
             "install": record, "machine": machine_facts(data_dir),
             "server": server_facts(port), "models": model_facts(data_dir),
             "plugins": plugin_facts(record)}
    facts["advice"] = advise(facts)
    return facts
