"""Photographs for judging seamwise-tiny, fetched from the Debian packages that ship them.

`benchmarks/data/tiny_photos.json` names them (package, version, SHA-256, file, licence) in two
splits from two packages the model never trained on: `heldout`, fixed before any setting was
tuned and never used to choose one, and `validation`, on which settings are chosen. Each is
fetched with `apt-get download`, checked against the manifest's SHA-256, unpacked with
`dpkg-deb -x`, and cut to a fixed crop (Lanczos to the manifest's width, then the centre), kept
as PNGs in a cache folder. Nothing is committed.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

MANIFEST = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "tiny_photos.json"
SPLITS = ("heldout", "validation")


def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def centre_crop(img: Image.Image, resize_width: int, width: int, height: int) -> np.ndarray:
    """Lanczos to `resize_width` px wide (aspect kept), then the centre width × height."""
    img = img.convert("RGB")
    h = round(img.height * resize_width / img.width)
    img = img.resize((resize_width, h), Image.LANCZOS)
    x, y = (resize_width - width) // 2, (h - height) // 2
    return np.ascontiguousarray(np.asarray(img)[y:y + height, x:x + width])


def fetch_split(split: str, cache: Path) -> list[tuple[str, np.ndarray]]:
    """[(photo name, H x W x 3 uint8 crop)] of one split, fetched into `cache` the first time."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    m = manifest()
    spec, crop = m[split], m["crop"]
    folder = cache / split
    names = [p["file"] for p in spec["photos"]]
    if not all((folder / Path(n).with_suffix(".png").name).is_file() for n in names):
        _fetch(spec, crop, folder)
    return [(Path(n).stem, np.asarray(Image.open(folder / Path(n).with_suffix(".png").name).convert("RGB")))
            for n in names]


def _fetch(spec: dict, crop: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pkg = f"{spec['package']}={spec['version']}"
        try:
            subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SystemExit(f"cannot fetch {pkg} with apt-get download ({e}); the benchmark "
                             "photographs come from Debian packages") from e
        deb = next(tmp.glob("*.deb"))
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest != spec["sha256"]:
            raise SystemExit(f"{deb.name}: SHA-256 {digest}, manifest says {spec['sha256']}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
        for p in spec["photos"]:
            img = Image.open(tmp / "root" / spec["dir"] / p["file"])
            out = centre_crop(img, crop["resize_width"], crop["width"], crop["height"])
            Image.fromarray(out).save(folder / Path(p["file"]).with_suffix(".png").name)
