"""The Export dialog section and pairing with a LAN server (a real one, in LAN mode on loopback)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from .lr_sdk import LightroomHost, Rendition

pytestmark = pytest.mark.timeout(120)


def controls(view) -> list:
    """Every control in a view table, depth first."""
    found = [view]
    for _, child in view.items():
        if hasattr(child, "items") and child[b"_kind"] is not None:
            found.extend(controls(child))
    return found


def build_section(host: LightroomHost, props):
    factory = host.lua.eval(b"function(import) return import('LrView').osFactory() end")(host._import)
    return host.filter_provider()[b"sectionForFilterInDialog"](factory, props)


def bound_keys(section) -> set[bytes]:
    keys = set()
    for _, row in section.items():
        if not hasattr(row, "items"):
            continue
        for control in controls(row):
            for attr in (b"value", b"title"):
                value = control[attr]
                if hasattr(value, "items") and value[b"_binding"]:
                    keys.add(value[b"key"])
    return keys


def button(section, title: bytes):
    for _, row in section.items():
        if hasattr(row, "items"):
            for control in controls(row):
                if control[b"_kind"] == b"push_button" and control[b"title"] == title:
                    return control
    raise AssertionError(f"no button {title!r}")


def test_section_binds_every_setting():
    host = LightroomHost()
    props = host.property_table()
    section = build_section(host, props)
    assert section[b"title"] == b"Seamwise enhance"
    preset_keys = {f[b"key"] for f in host.filter_provider()[b"exportPresetFields"].values()}
    assert preset_keys <= bound_keys(section)
    modes = [c for _, row in section.items() if hasattr(row, "items") for c in controls(row)
             if c[b"_kind"] == b"popup_menu" and c[b"value"][b"key"] == b"seamwise_mode"][0]
    assert [item[b"value"] for item in modes[b"items"].values()] == [b"refine", b"upscale"]
    assert props[b"seamwise_address"] == b"http://127.0.0.1:7821"
    assert b"Not paired" in props[b"seamwise_pairStatus"]


def test_pairing_keeps_a_token_that_opens_the_lan_server(make_server, tmp_path):
    server = make_server("--lan", "--host", "127.0.0.1", "--no-discovery")
    assert server.pairing_code
    pixels = np.arange(16 * 16 * 3, dtype=np.uint16).reshape(16, 16, 3) * 85
    tifffile.imwrite(tmp_path / "a.tif", pixels, photometric="rgb")

    host = LightroomHost()
    props = host.property_table({"seamwise_address": server.address})

    # without a token the LAN server refuses the photo, and says why
    host.run_export(props, [Rendition(tmp_path / "a.tif")])
    refusal = [r for r in host.records.requests if r.method == "POST"][0]
    assert refusal.status == 401
    assert host.records.done[1].success is False
    assert host.records.done[1].message == json.loads(refusal.body)["message"]

    section = build_section(host, props)
    host.run_tasks(30)
    assert props[b"seamwise_models"].startswith(b"No model list: "), props[b"seamwise_models"]
    props[b"seamwise_pairCode"] = b"12345"
    button(section, b"Pair")[b"action"]()
    host.run_tasks(30)
    assert b"6-digit" in props[b"seamwise_pairStatus"]

    props[b"seamwise_pairCode"] = ("000000" if server.pairing_code != "000000" else "111111").encode()
    button(section, b"Pair")[b"action"]()
    host.run_tasks(30)
    assert props[b"seamwise_pairStatus"].startswith(b"Pairing failed: ")
    assert host.prefs[b"tokens"] is None

    props[b"seamwise_pairCode"] = f" {server.pairing_code} ".encode()
    button(section, b"Pair")[b"action"]()
    host.run_tasks(30)
    assert props[b"seamwise_pairStatus"] == b"Paired with this server."
    assert props[b"seamwise_models"].startswith(b"In use: "), props[b"seamwise_models"]  # listed once paired
    pair_request = [r for r in host.records.requests if r.path == "/v1/pair"][-1]
    assert pair_request.headers["Content-Type"] == "application/json"
    token = host.prefs[b"tokens"][server.address.encode()].decode()
    assert token == json.loads(pair_request.body)["token"]

    # a second export (the same Lightroom session, so the same preferences) gets through
    host.records.done.clear()
    host.run_export(props, [Rendition(tmp_path / "a.tif")])
    assert host.records.done[1].success, host.records.done[1].message
    assert [r for r in host.records.requests if r.method == "POST"][-1].headers["Authorization"] == f"Bearer {token}"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), pixels)

    button(section, b"Forget")[b"action"]()
    assert host.prefs[b"tokens"][server.address.encode()] is None
    assert b"Not paired" in props[b"seamwise_pairStatus"]
