"""Where the Photoshop panel and the Lightroom plugin are installed, and which versions.

Photoshop: Adobe's Unified Plugin Installer Agent unpacks a .ccx into UXP's External plugins
folder as ID_VERSION/. Lightroom Classic loads every .lrplugin in its Modules folder. Paths are
computed from a `Places` (home, environment, platform) so tests can point them at a scratch home.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from seamwise.models.sources import Places

PHOTOSHOP_ID = "com.seamwise.photoshop"
LIGHTROOM_FOLDER = "seamwise.lrplugin"


def lightroom_modules(p: Places) -> Optional[Path]:
    """Lightroom Classic's Modules folder (None on Linux, where Lightroom does not run)."""
    if p.platform == "win32":
        return p.app_data() / "Adobe" / "Lightroom" / "Modules"
    if p.platform == "darwin":
        return p.app_data() / "Adobe" / "Lightroom" / "Modules"
    return None


def uxp_external(p: Places) -> Optional[Path]:
    """UXP's folder of plugins installed outside the marketplace (None on Linux)."""
    if p.platform == "win32":
        common = p.env.get("CommonProgramFiles") or r"C:\Program Files\Common Files"
        return Path(common) / "Adobe" / "UXP" / "Plugins" / "External"
    if p.platform == "darwin":
        return Path("/Library/Application Support/Adobe/UXP/Plugins/External")
    return None


def lrplugin_version(folder: Path) -> Optional[str]:
    """major.minor.revision from the plugin's Info.lua."""
    try:
        text = (folder / "Info.lua").read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r"VERSION\s*=\s*\{\s*major\s*=\s*(\d+),\s*minor\s*=\s*(\d+),\s*"
                  r"revision\s*=\s*(\d+)", text)
    return ".".join(m.groups()) if m else None


def ccx_version(folder: Path) -> Optional[str]:
    try:
        return str(json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_photoshop(p: Places) -> Optional[dict]:
    root = uxp_external(p)
    if root is None or not root.is_dir():
        return None
    for folder in sorted(root.glob(f"{PHOTOSHOP_ID}*"), reverse=True):
        version = ccx_version(folder)
        if version:
            return {"installed": True, "version": version, "path": str(folder)}
    return None


def find_lightroom(p: Places) -> Optional[dict]:
    modules = lightroom_modules(p)
    if modules is None:
        return None
    version = lrplugin_version(modules / LIGHTROOM_FOLDER)
    return {"installed": True, "version": version, "path": str(modules / LIGHTROOM_FOLDER)} \
        if version else None
