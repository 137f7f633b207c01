"""The model manager: finds the models a user already has and references them where they lie.

`discover` lists the bundled model, every model in the folders the known tools use (sources.py)
and every file or folder the user added (`seamwise models add`), classified from headers and
configs (classify.py). The user's choices live in DATA_DIR/models.json, next to jobs and tokens,
so an upgrade or reinstall of the program keeps them. Nothing is ever copied, moved or deleted.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from seamwise.models.classify import Kind, classify, classify_checkpoint, is_diffusers_folder
from seamwise.models.sources import Places, Root, known_roots

BUNDLED = "tiny"
REGISTRY_FILE = "models.json"
MAX_DEPTH = 6      # folder levels scanned below a root (InvokeAI nests four deep)


@dataclass
class Model:
    """One model as the CLI and the server show it; `id` is stable for a given path."""
    id: str
    name: str
    path: str
    format: str
    family: Optional[str]
    family_name: str
    supported: bool
    note: str
    source: str
    size_bytes: int
    default: bool = False

    @property
    def spec(self) -> str:
        """What the engine loads: "tiny" for the bundled model, else the path."""
        return BUNDLED if self.id == BUNDLED else self.path

    @property
    def served_name(self) -> str:
        """The name a server running this model reports as "model" in /v1/info."""
        return "seamwise-tiny" if self.id == BUNDLED else Path(self.path).name

    def public(self) -> dict:
        """What the server sends: everything but the path (clients never see server paths)."""
        d = asdict(self)
        del d["path"]
        return d


@dataclass
class Registry:
    """The user's model choices: folders and files added by hand, and the default model."""
    file: Path
    added: list[str] = field(default_factory=list)
    default: str = BUNDLED

    @classmethod
    def load(cls, data_dir: Path) -> "Registry":
        file = Path(data_dir) / REGISTRY_FILE
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(file)
        except (OSError, ValueError) as e:
            raise ModelError(f"{file} is not readable ({e}); fix or delete it") from e
        return cls(file, [str(p) for p in data.get("added", [])],
                   str(data.get("default") or BUNDLED))

    def save(self) -> None:
        """Written to a temporary file and renamed: a crash never leaves half a registry."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"added": self.added, "default": self.default}, indent=2),
                       encoding="utf-8")
        os.replace(tmp, self.file)


class ModelError(Exception):
    """A model command cannot do what was asked (the message says why)."""


def model_id(path: Path) -> str:
    return hashlib.sha1(os.path.normcase(os.path.realpath(path)).encode()).hexdigest()[:12]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _model(path: Path, kind: Kind, source: str) -> Model:
    name = path.stem if path.is_file() else path.name
    return Model(id=model_id(path), name=name, path=str(path), format=kind.format,
                 family=kind.family, family_name=kind.family_name, supported=kind.supported,
                 note=kind.note, source=source, size_bytes=_size(path))


def bundled_model() -> Model:
    from engine.api import _BUNDLED_SPEC

    weights = _BUNDLED_SPEC.with_suffix(".safetensors")
    return Model(id=BUNDLED, name="seamwise-tiny (bundled)", path=str(weights),
                 format="checkpoint", family="seamwise-tiny", family_name="Seamwise tiny",
                 supported=True, note="", source="bundled",
                 size_bytes=weights.stat().st_size if weights.is_file() else 0)


def scan(root: Path, source: str) -> Iterator[Model]:
    """The diffusion models in `root` and below: diffusers folders and recognised checkpoints.

    Files that are not whole diffusion models (LoRAs, VAEs, text encoders) are left out.
    """
    if root.is_file() or is_diffusers_folder(root):
        yield _model(root, classify(root), source)
        return
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        real = os.path.realpath(here)
        if real in seen or len(here.relative_to(root).parts) >= MAX_DEPTH:
            dirs.clear()
            continue
        seen.add(real)
        for d in sorted(dirs):
            if is_diffusers_folder(here / d):
                yield _model(here / d, classify(here / d), source)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not is_diffusers_folder(here / d))
        for name in sorted(files):
            if name.lower().endswith(".safetensors"):
                kind = classify_checkpoint(here / name)
                if kind.family is not None:
                    yield _model(here / name, kind, source)


def places() -> Places:
    return Places(Path.home(), dict(os.environ), sys.platform)


def roots(registry: Registry, where: Optional[Places] = None) -> list[Root]:
    """The known tools' folders that exist, then what the user added."""
    found = [r for r in known_roots(where or places()) if r.path.is_dir()]
    return found + [Root("added", Path(p)) for p in registry.added]


def discover(registry: Registry, where: Optional[Places] = None) -> list[Model]:
    """Every model, once (the first folder that reaches a file names its source)."""
    models, ids = [bundled_model()], {BUNDLED}
    for root in roots(registry, where):
        if not root.path.exists():
            continue
        for model in scan(root.path, root.source):
            if model.id not in ids:
                ids.add(model.id)
                models.append(model)
    for model in models:
        model.default = model.id == registry.default
    return models


def find(models: list[Model], ref: str) -> Optional[Model]:
    """A model by id, name or path."""
    for model in models:
        if ref in (model.id, model.name):
            return model
    target = model_id(Path(os.path.expanduser(ref))) if ref else None
    return next((m for m in models if m.id == target), None)


def default_model(registry: Registry, where: Optional[Places] = None,
                  models: Optional[list[Model]] = None) -> Model:
    """The model `seamwise serve` uses when none is named: the user's default, else bundled.
    `models`: what discover() already returned, to scan only once."""
    models = models if models is not None else discover(registry, where)
    chosen = find(models, registry.default)
    return chosen if chosen is not None and chosen.supported else models[0]
