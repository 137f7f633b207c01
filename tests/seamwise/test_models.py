"""`seamwise models`: finds other tools' models in place, classifies them from headers, never
touches their files; the server lists the same models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seamwise.models import Registry, discover
from seamwise.models.classify import classify
from seamwise.models.header import HeaderError, read_shapes
from seamwise.models.sources import Places, known_roots
from tests.seamwise.fake_models import build_home, checkpoint, write_safetensors

REPO = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict:
    """Every file under root with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and "seamwise-data" not in p.parts}


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    return home, build_home(home)


def env_for(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "INVOKEAI"))}
    return dict(env, HOME=str(home), INVOKEAI_ROOT=str(home / "invoke"), HF_HUB_OFFLINE="1")


def seamwise(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seamwise", "models", "--data-dir",
                           str(home / "seamwise-data"), *args], capture_output=True, text=True,
                          env=env_for(home), cwd=REPO, timeout=120)


def listed(home: Path) -> dict:
    out = seamwise(home, "--json", "list")
    assert out.returncode == 0, out.stderr
    return {m["path"]: m for m in json.loads(out.stdout)["models"]}


EXPECTED = {  # what build_home laid out: (family, supported, source)
    "comfy-sd1": ("sd1", True, "ComfyUI"),
    "comfy-flux1": ("flux1", False, "ComfyUI"),
    "comfy-flux1-prefixed": ("flux1", False, "ComfyUI"),
    "a1111-sd2": ("sd2", True, "AUTOMATIC1111/Forge"),
    "a1111-sdxl-sub": ("sdxl", True, "AUTOMATIC1111/Forge"),
    "shared-sd1": ("sd1", True, "ComfyUI extra_model_paths (mine)"),
    "krita-sdxl": ("sdxl", True, "Krita AI Diffusion"),
    "matrix-sd3": ("sd3", False, "Stability Matrix"),
    "matrix-qwen": ("qwen-image", False, "Stability Matrix"),
    "invoke-sdxl": ("sdxl", True, "InvokeAI"),
    "invoke-sd2": ("sd2", True, "InvokeAI"),
    "invoke-flux2": ("flux2", False, "InvokeAI"),
}


def test_list_finds_every_tools_models_in_place_and_names_their_family(home):
    home, found = home
    before = tree(home)
    models = listed(home)
    for what, (family, supported, source) in EXPECTED.items():
        m = models.get(str(found[what]))
        assert m is not None, f"{what} not found"
        assert (m["family"], m["supported"], m["source"]) == (family, supported, source), what
        assert (m["note"] == "not yet supported") == (not supported), what
    # Only whole diffusion models, each once, plus the bundled one.
    assert len(models) == len(EXPECTED) + 1
    assert not any("lora" in p or p.endswith((".ckpt", "broken.safetensors", "inpaint.safetensors"))
                   for p in models)
    assert tree(home) == before  # nothing copied, moved, touched or created among the models


def test_add_references_in_place_then_remove_forgets_without_deleting(home, tmp_path):
    home, _ = home
    mine = tmp_path / "by hand"
    sd = checkpoint(mine / "portrait.safetensors", "sd1")
    flux = checkpoint(mine / "deeper" / "flux.safetensors", "flux1")
    out = seamwise(home, "add", str(mine))
    assert out.returncode == 0, out.stderr
    models = listed(home)
    assert models[str(sd)]["source"] == "added" and models[str(flux)]["family"] == "flux1"
    assert sorted(p.name for p in mine.rglob("*")) == ["deeper", "flux.safetensors",
                                                        "portrait.safetensors"]
    # registry survives in the data folder, as a path, not a copy
    saved = json.loads((home / "seamwise-data" / "models.json").read_text())
    assert saved["added"] == [str(mine)]
    assert seamwise(home, "remove", str(mine)).returncode == 0
    assert str(sd) not in listed(home) and sd.is_file()
    gone = seamwise(home, "remove", str(mine))
    assert gone.returncode == 1 and "not added" in gone.stderr


def test_add_refuses_what_is_not_a_model(home, tmp_path):
    home, _ = home
    missing = seamwise(home, "add", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    lora = checkpoint(tmp_path / "lora.safetensors", "lora")
    refused = seamwise(home, "add", str(lora))
    assert refused.returncode == 1 and "not a recognised diffusion model" in refused.stderr


def test_default_accepts_runnable_models_only(home):
    home, found = home
    flux = seamwise(home, "default", str(found["comfy-flux1"]))
    assert flux.returncode == 1 and "not yet supported" in flux.stderr
    ok = seamwise(home, "--json", "default", str(found["krita-sdxl"]))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["path"] == str(found["krita-sdxl"])
    models = listed(home)
    assert [p for p, m in models.items() if m["default"]] == [str(found["krita-sdxl"])]
    found["krita-sdxl"].unlink()  # the user deleted it in Krita: back to the bundled model
    back = seamwise(home, "--json", "default")
    assert json.loads(back.stdout)["id"] == "tiny"


def test_header_reader_refuses_broken_files_before_reading_much(tmp_path):
    bad = tmp_path / "bad.safetensors"
    for content in (b"", b"\x05\x00", (2 ** 40).to_bytes(8, "little") + b"{}",
                    (10).to_bytes(8, "little") + b"not json!!", (2).to_bytes(8, "little") + b"[]"):
        bad.write_bytes(content)
        with pytest.raises(HeaderError):
            read_shapes(bad)
    good = write_safetensors(tmp_path / "g.safetensors", {"a": [2, 3]})
    assert read_shapes(good) == {"a": (2, 3)}
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"\x80\x04 pickle that must never be unpickled")
    assert "arbitrary code" in classify(ckpt).note


def test_places_per_platform(tmp_path):
    win = Places(tmp_path, {"APPDATA": str(tmp_path / "Roaming")}, "win32")
    roots = {(r.source, str(r.path)) for r in known_roots(win)}
    assert ("Krita AI Diffusion", str(tmp_path / "Roaming" / "krita" / "ai_diffusion" / "server" /
                                      "ComfyUI" / "models" / "checkpoints")) in roots
    assert ("Stability Matrix", str(tmp_path / "Roaming" / "StabilityMatrix" / "Models" /
                                    "StableDiffusion")) in roots
    mac = Places(tmp_path, {}, "darwin")
    desktop = tmp_path / "Library" / "Application Support" / "ComfyUI"
    desktop.mkdir(parents=True)
    (desktop / "config.json").write_text(json.dumps({"basePath": str(tmp_path / "Comfy Base")}))
    roots = {(r.source, str(r.path)) for r in known_roots(mac)}
    assert ("ComfyUI Desktop", str(tmp_path / "Comfy Base" / "models" / "checkpoints")) in roots


def test_discover_in_process_matches_the_cli(home):
    home, found = home
    where = Places(home, {"INVOKEAI_ROOT": str(home / "invoke")}, "linux")
    models = discover(Registry(home / "seamwise-data" / "models.json"), where)
    assert {m.path for m in models} - {models[0].path} == {str(p) for p in found.values()}


def test_classifying_reads_the_header_only(tmp_path):
    """A checkpoint cut off right after its header (no weight bytes at all) still classifies:
    nothing past the header is read."""
    whole = checkpoint(tmp_path / "xl.safetensors", "sdxl")
    length = int.from_bytes(whole.read_bytes()[:8], "little")
    with open(whole, "r+b") as f:
        f.truncate(8 + length)
    kind = classify(whole)
    assert (kind.family, kind.supported) == ("sdxl", True)
