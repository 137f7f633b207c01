"""Where other image tools keep their models, so that Seamwise can use them where they lie.

Each tool has a usual place per platform and, for some, a file that moves it: ComfyUI's
extra_model_paths.yaml (also written by Krita AI Diffusion, and by ComfyUI Desktop as
extra_models_config.yaml), ComfyUI Desktop's config.json (`basePath`), Stability Matrix's
library.json (`LibraryPath`), InvokeAI's INVOKEAI_ROOT. The functions here only compute folders
from a home directory, the environment and the platform, so tests build fake trees and pass
them in; nothing is moved, copied or linked.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

# Folders, under a ComfyUI models root, that hold whole diffusion models (not LoRAs, VAEs...).
COMFY_KINDS = ("checkpoints", "diffusion_models", "unet")


@dataclass(frozen=True)
class Root:
    """A folder to scan for models, and the tool it belongs to."""
    source: str
    path: Path


@dataclass(frozen=True)
class Places:
    """The user's home, environment and platform ("linux", "darwin", "win32")."""
    home: Path
    env: Mapping[str, str]
    platform: str

    def app_data(self) -> Path:
        """Roaming application data: %APPDATA%, ~/Library/Application Support, ~/.config."""
        if self.platform == "win32":
            return Path(self.env.get("APPDATA") or self.home / "AppData" / "Roaming")
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support"
        return Path(self.env.get("XDG_CONFIG_HOME") or self.home / ".config")

    def data_home(self) -> Path:
        """Where Linux programs keep data (~/.local/share); app data elsewhere."""
        if self.platform in ("win32", "darwin"):
            return self.app_data()
        return Path(self.env.get("XDG_DATA_HOME") or self.home / ".local" / "share")


def read_json(path: Path) -> dict:
    """A JSON object from a tool's settings file; {} when it is missing or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def extra_model_paths(yaml_file: Path) -> Iterator[Root]:
    """The checkpoint folders an extra_model_paths.yaml maps in (ComfyUI's format).

    Each top-level section has an optional base_path (relative to the file) and, per model kind,
    one folder or several on separate lines, relative to base_path.
    """
    import yaml

    try:
        config = yaml.safe_load(yaml_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return
    if not isinstance(config, dict):
        return
    for section, entries in config.items():
        if not isinstance(entries, dict):
            continue
        base = Path(os.path.expanduser(str(entries.get("base_path", ""))))
        if not base.is_absolute():
            base = yaml_file.parent / base
        for kind in COMFY_KINDS:
            value = entries.get(kind)
            if not isinstance(value, str):
                continue
            for line in value.splitlines():
                if line.strip():
                    folder = Path(os.path.expanduser(line.strip()))
                    full = folder if folder.is_absolute() else base / folder
                    yield Root(f"ComfyUI extra_model_paths ({section})",
                               Path(os.path.normpath(full)))


def _comfy_root(install: Path, source: str) -> Iterator[Root]:
    for kind in COMFY_KINDS:
        yield Root(source, install / "models" / kind)
    yield from extra_model_paths(install / "extra_model_paths.yaml")


def comfyui(p: Places) -> Iterator[Root]:
    """ComfyUI from git or the portable build, and ComfyUI Desktop."""
    for install in (p.home / "ComfyUI", p.home / "ComfyUI_windows_portable" / "ComfyUI",
                    p.home / "Documents" / "ComfyUI"):
        yield from _comfy_root(install, "ComfyUI")
    desktop = p.app_data() / "ComfyUI"
    base = read_json(desktop / "config.json").get("basePath")
    if isinstance(base, str) and base:
        yield from _comfy_root(Path(base), "ComfyUI Desktop")
    yield from extra_model_paths(desktop / "extra_models_config.yaml")


def automatic1111(p: Places) -> Iterator[Root]:
    """AUTOMATIC1111's web UI and Forge: models/Stable-diffusion."""
    for name in ("stable-diffusion-webui", "stable-diffusion-webui-forge", "sd-webui-forge",
                 "webui_forge"):
        yield Root("AUTOMATIC1111/Forge", p.home / name / "models" / "Stable-diffusion")


def invokeai(p: Places) -> Iterator[Root]:
    """InvokeAI's models folder (its root from INVOKEAI_ROOT, else ~/invokeai)."""
    root = Path(p.env.get("INVOKEAI_ROOT") or p.home / "invokeai")
    yield Root("InvokeAI", root / "models")


def krita(p: Places) -> Iterator[Root]:
    """Krita AI Diffusion's managed server: a ComfyUI inside Krita's data folder."""
    base = p.app_data() if p.platform == "win32" else p.data_home()
    yield from _comfy_root(base / "krita" / "ai_diffusion" / "server" / "ComfyUI",
                           "Krita AI Diffusion")


def stability_matrix(p: Places) -> Iterator[Root]:
    """Stability Matrix's shared Models folder (its library from library.json)."""
    data = p.app_data() / "StabilityMatrix"
    library = read_json(data / "library.json").get("LibraryPath")
    base = Path(library) if isinstance(library, str) and library else data
    for kind in ("StableDiffusion", "DiffusionModels", "Unet"):
        yield Root("Stability Matrix", base / "Models" / kind)


TOOLS = (comfyui, automatic1111, invokeai, krita, stability_matrix)


def known_roots(p: Places) -> list[Root]:
    """Every folder the known tools may keep models in, existing or not, without duplicates.

    A tool's own folders come before the folders mapped in from elsewhere, so a model that
    extra_model_paths.yaml borrows from A1111 is listed as A1111's.
    """
    seen, roots = set(), []
    found = [root for tool in TOOLS for root in tool(p)]
    for root in sorted(found, key=lambda r: r.source.startswith("ComfyUI extra_model_paths")):
        key = os.path.normcase(os.path.abspath(root.path))
        if key not in seen:
            seen.add(key)
            roots.append(root)
    return roots
