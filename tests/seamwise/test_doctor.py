"""`seamwise doctor` and the facts the server's /v1/info and /v1/models share with the panel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from seamwise import __version__, plugins
from seamwise.doctor import GiB, advise
from seamwise.models.sources import Places
from tests.seamwise.fake_models import build_home
from tests.seamwise.test_models import env_for
from tests.server.conftest import start_server

REPO = Path(__file__).resolve().parents[2]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def live(tmp_path, monkeypatch):
    """A real server on loopback whose user has the fake tools' models."""
    home = tmp_path / "home"
    found = build_home(home)
    for key, value in env_for(home).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("XDG_")]:
        monkeypatch.delenv(key)
    server = start_server(tmp_path / "data")
    yield server, home, found
    server.stop()


def test_server_lists_the_same_models_without_paths_and_info_explains_the_machine(live):
    server, home, found = live
    listing = get(server.url + "/v1/models")
    cli = subprocess.run([sys.executable, "-m", "seamwise", "models", "--data-dir",
                          str(server.data_dir), "--json", "list"], capture_output=True, text=True,
                         env=os.environ.copy(), cwd=REPO, check=True)
    expected = json.loads(cli.stdout)["models"]
    assert [m["id"] for m in listing["models"]] == [m["id"] for m in expected]
    assert all("path" not in m for m in listing["models"])
    assert str(home) not in json.dumps(listing)
    flux = next(m for m in listing["models"] if m["name"] == "flux1-dev")
    assert (flux["family_name"], flux["supported"], flux["note"]) == ("FLUX.1", False,
                                                                      "not yet supported")
    info = get(server.url + "/v1/info")
    for key in ("version", "protocol", "model", "device", "vram_bytes", "limits", "queue"):
        assert key in info            # existing fields kept
    assert info["torch"].startswith("2.") and info["torch_build"] == "cpu"
    assert info["ram_free_bytes"] > 0 and info["disk_free_bytes"] > 0
    assert isinstance(info["advice"], list)


def test_doctor_json_sees_the_running_server_and_the_model(live):
    server, home, found = live
    out = subprocess.run([sys.executable, "-m", "seamwise", "doctor", "--json", "--port",
                          str(server.port), "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, env=os.environ.copy(), cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    f = json.loads(out.stdout)
    assert f["version"] == __version__ and f["server"]["answers"] is True
    assert f["server"]["info"]["model"] == "identity"
    assert f["machine"]["device"] == "cpu" and f["machine"]["torch"].startswith("2.")
    assert f["models"]["default"]["id"] == "tiny" and f["models"]["count"] == len(found) + 1
    assert set(f["plugins"]) == {"photoshop", "lightroom"}
    assert not any("no server answers" in line for line in f["advice"])
    text = subprocess.run([sys.executable, "-m", "seamwise", "doctor", "--port", "9",
                           "--data-dir", str(server.data_dir)], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=REPO, timeout=120).stdout
    assert "server on port 9: not answering" in text
    assert "! no server answers on port 9" in text


GOOD = {"platform": "win32", "machine": {"torch": "2.13.0", "backend": "cuda",
                                         "disk_free_bytes": 500 * GiB, "ram_free_bytes": 30 * GiB,
                                         "data_dir": "D"},
        "install": {"backend": "cuda"},
        "server": {"port": 7821, "answers": True, "info": {"model": "portrait.safetensors"}},
        "models": {"default": {"name": "portrait"}, "served_name": "portrait.safetensors"},
        "plugins": {"photoshop": {"installed": True, "version": __version__},
                    "lightroom": {"installed": True, "version": __version__}}}


def with_(path: str, value) -> dict:
    f = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = f
    for key in parents:
        node = node[key]
    node[last] = value
    return f


@pytest.mark.parametrize("change,advice", [
    (("machine.torch", None), "PyTorch does not import"),
    (("machine.backend", "cpu"), "installed for cuda but rendering on the CPU"),
    (("machine.disk_free_bytes", 3 * GiB), "only 3.0 GiB free under D"),
    (("machine.ram_free_bytes", GiB // 2), "GiB of RAM free"),
    (("server", {"port": 7821, "answers": False}), "no server answers on port 7821"),
    (("server", {"port": 7821, "answers": True, "status": 401}), "pair this machine"),
    (("models.missing_default", "abc"), "no longer found"),
    (("server.info", {"model": "other.safetensors"}), "restart the server"),
    (("server.info", {"model": "seamwise-tiny"}), "restart the server"),
    (("plugins.photoshop", {"installed": False}), "Photoshop panel is not installed"),
    (("plugins.lightroom", {"installed": True, "version": "0.0.1"}), "version 0.0.1"),
    (("plugins.photoshop", {"state": "opened", "next": "click Install"}), "click Install"),
])
def test_each_problem_gets_one_line_of_advice(change, advice):
    assert advise(GOOD) == []
    lines = advise(with_(*change))
    assert len(lines) == 1 and advice in lines[0], lines


def test_plugins_are_found_where_photoshop_and_lightroom_load_them(tmp_path):
    win = Places(tmp_path, {"APPDATA": str(tmp_path / "Roaming"),
                            "CommonProgramFiles": str(tmp_path / "Common")}, "win32")
    assert plugins.find_lightroom(win) is None and plugins.find_photoshop(win) is None
    lr = tmp_path / "Roaming" / "Adobe" / "Lightroom" / "Modules" / "seamwise.lrplugin"
    lr.mkdir(parents=True)
    (lr / "Info.lua").write_text((REPO / "bridge_lightroom" / "seamwise.lrplugin" /
                                  "Info.lua").read_text())
    ps = tmp_path / "Common" / "Adobe" / "UXP" / "Plugins" / "External" / \
        "com.seamwise.photoshop_0.1.0"
    ps.mkdir(parents=True)
    (ps / "manifest.json").write_text((REPO / "bridge_uxp" / "manifest.json").read_text())
    assert plugins.find_lightroom(win)["version"] == "0.1.0"
    assert plugins.find_photoshop(win)["version"] == "0.1.0"
    assert plugins.lightroom_modules(Places(tmp_path, {}, "linux")) is None


def test_info_says_why_the_model_did_not_load(tmp_path):
    import time

    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    server = start_server(tmp_path / "data", "--model", str(bad), engine="real")
    try:
        deadline = time.monotonic() + 120
        info = get(server.url + "/v1/info")
        while info["model_error"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            info = get(server.url + "/v1/info")
        assert "broken.safetensors" in info["model_error"]
        assert any("the model did not load" in line for line in info["advice"])
    finally:
        server.stop()
