"""The server's models in the Export dialog (GET /v1/models, from a real server on loopback) and,
on a render cluster, the box and actor in the progress caption (`runs_on`, checked with the
shapes docs/PROTOCOL.md gives: a Ray cluster is too slow to start here)."""
from __future__ import annotations

import json
import urllib.request

import pytest

from .lr_sdk import LightroomHost
from .test_dialog import build_section, button

pytestmark = pytest.mark.timeout(120)

MODELS = {
    "in_use": "seamwise-tiny",
    "models": [
        {"id": "tiny", "name": "seamwise-tiny", "format": "diffusers", "family": "tiny", "family_name": "Seamwise tiny",
         "supported": True, "note": "", "source": "bundled", "size_bytes": 1000, "default": False},
        {"id": "juggernaut", "name": "juggernautXL", "format": "checkpoint", "family": "sdxl",
         "family_name": "Stable Diffusion XL", "supported": True, "note": "", "source": "models",
         "size_bytes": 6000000000, "default": True},
        {"id": "flux1", "name": "flux1-dev", "format": "checkpoint", "family": "flux", "family_name": "FLUX.1",
         "supported": False, "note": "not yet supported", "source": "models", "size_bytes": 20000000000,
         "default": False},
    ],
}
RUNS_ON = {"actor": "render-2", "box": "gpu-box-b", "node": "n2", "attempt": 1, "helpers": []}


def decoded(host: LightroomHost, value):
    """A JSON body as the plugin's own decoder gives it to the plugin."""
    return host.require(b"SeamwiseJson")[b"decode"](json.dumps(value).encode())


def test_model_list_text_marks_default_unsupported_and_restart():
    host = LightroomHost()
    describe = host.require(b"SeamwiseModels")[b"describe"]
    assert describe(decoded(host, MODELS)).decode().split("\n") == [
        "In use: seamwise-tiny",
        "  seamwise-tiny (Seamwise tiny)",
        "  juggernautXL (Stable Diffusion XL), default",
        "  flux1-dev (FLUX.1), not yet supported",
        "The default is juggernautXL: restart the server to use it (seamwise models default juggernaut sets the default).",
    ]
    same = {**MODELS, "models": [{**m, "default": m["id"] == "tiny"} for m in MODELS["models"]]}
    assert b"restart" not in describe(decoded(host, same))
    assert describe(decoded(host, {"ok": True})) == b"This server does not list its models."


def test_progress_caption_names_box_actor_retry_and_split():
    host = LightroomHost()
    caption = host.require(b"SeamwiseExport")[b"describeProgress"]
    running = {"job": "j", "state": "running", "position": 0,
               "progress": {"phase": "denoise", "step": 2, "steps": 8, "tile": 1, "tiles": 4, "unit": "tile",
                            "fraction": 0.3, "eta_s": 4.2, "runs_on": RUNS_ON}}
    assert caption(1, 3, decoded(host, running)) == \
        b"Seamwise: photo 1 of 3, running (step 2 of 8, about 5 s left), on gpu-box-b (render-2)"
    retried = {**running, "progress": {**running["progress"], "eta_s": None,
                                       "runs_on": {**RUNS_ON, "attempt": 2, "helpers": ["render-0"]}}}
    assert caption(1, 3, decoded(host, retried)) == \
        b"Seamwise: photo 1 of 3, running (step 2 of 8), retried on gpu-box-b (render-2), attempt 2, split across 2 actors"
    # the first event of an attempt (phase "load") already names the box
    load = {**running, "progress": {**running["progress"], "phase": "load", "step": 0, "steps": 0}}
    assert caption(2, 3, decoded(host, load)) == b"Seamwise: photo 2 of 3, running, on gpu-box-b (render-2)"
    # a server without --cluster: as before
    plain = {**running, "progress": {k: v for k, v in running["progress"].items() if k != "runs_on"}}
    assert caption(1, 3, decoded(host, plain)) == b"Seamwise: photo 1 of 3, running (step 2 of 8, about 5 s left)"


def test_dialog_lists_a_real_servers_models(server):
    answer = json.load(urllib.request.urlopen(f"{server.address}/v1/models", timeout=10))
    host = LightroomHost()
    props = host.property_table({"seamwise_address": server.address})
    section = build_section(host, props)
    host.run_tasks(30)  # the section asks when it opens
    text = props[b"seamwise_models"].decode()
    assert text.startswith(f"In use: {answer['in_use']}\n"), text
    for m in answer["models"]:
        assert f"  {m['name']} ({m['family_name']})" in text
    assert [r.path for r in host.records.requests] == ["/v1/models"]

    props[b"seamwise_address"] = b"not an address"
    button(section, b"List models")[b"action"]()
    host.run_tasks(30)
    assert props[b"seamwise_models"].startswith(b"The server address must look like")


def test_dialog_says_when_no_server_answers():
    host = LightroomHost()
    props = host.property_table({"seamwise_address": "http://127.0.0.1:9"})
    build_section(host, props)
    host.run_tasks(30)
    assert props[b"seamwise_models"].startswith(b"No model list: The Seamwise server did not answer"), props[b"seamwise_models"]
