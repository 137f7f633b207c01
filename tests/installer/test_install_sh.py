"""installer/install.sh end to end: install into a scratch prefix and home, use the result,
upgrade, uninstall. Real uv, real packages from the registry and pip's local wheel folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.seamwise.fake_models import checkpoint

REPO = Path(__file__).resolve().parents[2]
# uv's download cache survives between runs (build/ is ignored by git): the second run of this
# test installs from it in seconds. The installed environment itself is always built fresh.
UV_CACHE = REPO / "build" / "uv-cache"

pytestmark = pytest.mark.installer


def snapshot(root: Path, data: Path) -> set[str]:
    """Every path under the home, but the data folder and its parents (kept on uninstall) and
    ~/.rustup, which pip's user-agent probe (`rustc --version` through rustup) writes on machines
    with rustup, whoever runs pip."""
    return {str(p) for p in root.rglob("*") if data not in p.parents and p not in data.parents
            and p != data and ".rustup" not in p.parts}


def run(cmd: list, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=env["HOME"])
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.timeout(1200)
def test_install_use_upgrade_uninstall(tmp_path):
    home, prefix = tmp_path / "home", tmp_path / "prefix"
    home.mkdir()
    (home / "Documents").mkdir()          # something of the user's, which must stay as it is
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "VIRTUAL_ENV", "UV_", "SEAMWISE"))}
    env.update(HOME=str(home), UV_CACHE_DIR=str(UV_CACHE))
    data = home / ".local" / "share" / "seamwise"
    before = snapshot(home, data)
    install = [REPO / "installer" / "install.sh", "--prefix", prefix, "--backend", "cpu"]

    first = run([*install, "--no-service"], env)
    assert "backend: cpu" in first.stdout and "linux-x86_64-cpu.txt" in first.stdout
    assert (prefix / "install.json").is_file()
    seamwise = prefix / "bin" / "seamwise"
    torch = run([prefix / "venv" / "bin" / "python", "-c",
                 "import torch; print(torch.__version__)"], env).stdout.strip()
    assert torch == "2.13.0+cpu"  # the lock's CPU build from the local wheel, not a CUDA one

    doctor = json.loads(run([seamwise, "doctor", "--json", "--port", "9"], env).stdout)
    assert doctor["machine"]["device"] == "cpu" and doctor["machine"]["torch"] == torch
    assert doctor["install"]["backend"] == "cpu" and doctor["install"]["service"] is None
    assert doctor["models"]["default"]["id"] == "tiny"
    for name in ("photoshop", "lightroom"):
        plugin = doctor["plugins"][name]
        assert plugin["state"] == "packaged" and plugin["version"] == "0.1.0", plugin
        assert Path(plugin["path"]).exists()

    mine = tmp_path / "My Models"
    model = checkpoint(mine / "portrait.safetensors", "sdxl")
    run([seamwise, "models", "add", mine], env)
    listed = json.loads(run([seamwise, "models", "--json", "list"], env).stdout)["models"]
    entry = next(m for m in listed if m["path"] == str(model))
    assert entry["family"] == "sdxl" and entry["source"] == "added"
    run([seamwise, "models", "default", "portrait"], env)

    # Upgrade in place, now with the login service of a LAN render box: model choices and data
    # stay, and the box opens pairing.
    second = run([*install, "--lan"], env)
    assert "upgrading" in second.stdout and "Pairing code" in second.stdout
    unit = home / ".config" / "systemd" / "user" / "seamwise.service"
    assert f"ExecStart={seamwise} serve --lan" in unit.read_text()
    assert (unit.parent / "default.target.wants" / "seamwise.service").resolve() == unit
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                                text=True)
        assert verify.returncode == 0, verify.stderr
    doctor = json.loads(run([seamwise, "doctor", "--json", "--port", "9"], env).stdout)
    assert doctor["models"]["default"]["name"] == "portrait"
    assert doctor["install"]["service"] == {"kind": "systemd", "file": str(unit), "lan": True}

    run([*install[:3], "--uninstall"], env)
    assert not prefix.exists()
    assert model.is_file() and (data / "models.json").is_file()   # referenced, never touched
    assert snapshot(home, data) == before    # nothing else added, nothing of the user's removed
