"""`seamwise serve --cluster` on a real local Ray cluster (2 CPUs, a small object store), one
for the whole module: servers join it as `--cluster auto`, each with two render actors."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from server.client import JobFailed, WsClient
from tests.server.conftest import REPO, start_server

ray = pytest.importorskip("ray")

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, object_store_memory=96 << 20, include_dashboard=False,
             _node_ip_address="127.0.0.1", namespace="seamwise", log_to_driver=False,
             logging_level="ERROR")
    address = ray.get_runtime_context().gcs_address
    yield address
    ray.shutdown()


@pytest.fixture
def farm(cluster, tmp_path, monkeypatch):
    """Starts servers on the module's cluster; stops them (and so their actors) afterwards."""
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    started = []

    def make(*extra: str, engine: str = "identity"):
        sp = start_server(tmp_path / f"data{len(started)}", "--cluster", "auto", "--actors", "2",
                          *extra,
                          engine=engine)
        started.append(sp)
        deadline = time.monotonic() + 120
        while info(sp)["cluster"]["idle"] < 2:      # both actors admitted, models loaded
            assert time.monotonic() < deadline, "the render actors did not start"
            time.sleep(0.2)
        return sp

    yield make
    for sp in started:
        sp.stop()
        assert not sp.alive()


def info(sp) -> dict:
    with urllib.request.urlopen(sp.url + "/v1/info", timeout=30) as r:
        return json.loads(r.read())


def _named(actor: str):
    """The live Ray actor behind a job's `runs_on` name (actor-N is seamwise-<server>-N)."""
    index = actor.rsplit("-", 1)[1]
    name = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].endswith(f"-{index}"))
    return ray.get_actor(name, namespace="seamwise")


async def render_watched(url: str, image: np.ndarray, params: dict, on_progress=None):
    """Render one job on its own connection; every progress event goes to `on_progress`."""
    async with WsClient(url) as c:
        job = await c.submit(image, params)
        while True:
            event = await c.recv(timeout=300)
            if event.get("job") != job:
                continue
            if event["type"] == "progress" and on_progress:
                await on_progress(event)
            if event["type"] == "job.failed":
                raise JobFailed(event)
            if event["type"] == "job.done":
                out, seams = await c.download(event)
                return out, event


def test_queued_jobs_run_in_parallel_on_the_actors(farm):
    sp = farm("--identity-delay", "0.4")
    image = RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    seen: list[dict] = []

    async def note(event):
        if event.get("runs_on"):
            seen.append(event["runs_on"])

    async def go():
        t0 = time.monotonic()
        results = await asyncio.gather(*[render_watched(sp.url, image, {"steps": 4}, note)
                                         for _ in range(4)])
        return time.monotonic() - t0, results

    wall, results = asyncio.run(go())
    for out, done in results:
        assert np.array_equal(out, image)
    # 4 jobs of 1.6 s each: one actor at a time would need 6.4 s
    assert wall < 5.2, wall
    actors = {done["stats"]["runs_on"]["actor"] for _, done in results}
    assert actors == {"actor-0", "actor-1"}
    assert {r["actor"] for r in seen} == actors and all(r["box"] for r in seen)
    c = info(sp)["cluster"]
    assert (c["backend"], c["actors"], c["gpus"], c["nodes"]) == ("ray", 2, 0, 1)
    doctor = subprocess.run([sys.executable, "-m", "seamwise", "doctor", "--port", str(sp.port),
                             "--data-dir", str(sp.data_dir)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert "cluster: ray, 2 actors (0 busy), 0 GPUs, 1 boxes" in doctor.stdout.splitlines()


def test_a_job_whose_actor_is_killed_finishes_on_another(farm):
    sp = farm("--identity-delay", "0.3")
    image = RNG.integers(0, 65535, (40, 56, 4), dtype=np.uint16)
    killed: dict = {}

    async def kill_once(event):
        where = event.get("runs_on")
        if where and not killed and event.get("phase") == "denoise" and event["step"] >= 2:
            # the actor named by the job's own status: kill it mid-job (Ray restarts it)
            running = info(sp)["cluster"]["running"]
            assert [r["actor"] for r in running if r["job"] == event["job"]] == [where["actor"]]
            with urllib.request.urlopen(f"{sp.url}/v1/jobs/{event['job']}", timeout=30) as r:
                assert json.loads(r.read())["progress"]["runs_on"]["actor"] == where["actor"]
            killed["actor"] = where["actor"]
            ray.kill(_named(where["actor"]), no_restart=False)

    out, done = asyncio.run(render_watched(sp.url, image, {"steps": 8}, kill_once))
    assert killed, "the job finished before its actor could be killed"
    assert np.array_equal(out, image)
    runs_on = done["stats"]["runs_on"]
    assert runs_on["attempt"] == 2 and runs_on["actor"] != killed["actor"]
    # the killed actor is restarted by Ray and takes work again
    deadline = time.monotonic() + 60
    while info(sp)["cluster"]["idle"] < 2:
        assert time.monotonic() < deadline, "the restarted actor did not rejoin"
        time.sleep(0.5)


def test_one_frame_across_two_actors_is_bit_identical_to_one_process(farm):
    from engine import api

    params = {"steps": 3, "strength": 0.6, "tile": 32, "seed": 9}
    image = np.ascontiguousarray(RNG.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    sp = farm("--split-mp", "0.001", engine="real")
    out, done = asyncio.run(render_watched(sp.url, image, params))
    farm_stats = done["stats"]["farm"]
    assert farm_stats["helpers"] == 1 and farm_stats["steps"] == 3
    assert farm_stats["exchange_bytes"] > 0 and done["stats"]["runs_on"]["helpers"]

    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # as a render actor runs (one CPU each)
    try:
        alone = api.Session("tiny").render(image, api.RenderParams(**params))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(out, alone.image)

    # the helper killed mid-render, in the first steps of six: Ray's kill lands asynchronously,
    # so several steps must remain for one of them to miss the helper; its tile groups then run
    # on the leader, same bits
    longer = {**params, "steps": 6}
    torch.set_num_threads(1)
    try:
        alone = api.Session("tiny").render(image, api.RenderParams(**longer))
    finally:
        torch.set_num_threads(threads)
    killed: dict = {}

    async def kill_helper(event):
        helpers = (event.get("runs_on") or {}).get("helpers")
        if helpers and not killed and event.get("phase") == "denoise" and event["step"] <= 1:
            killed["actor"] = helpers[0]
            ray.kill(_named(helpers[0]), no_restart=False)

    again, done = asyncio.run(render_watched(sp.url, image, longer, kill_helper))
    assert killed, "the render finished before its helper could be killed"
    assert done["stats"]["farm"]["helper_failures"] >= 1
    assert np.array_equal(again, alone.image)


def test_a_cluster_that_cannot_be_joined_is_one_clear_error(tmp_path):
    env = dict(os.environ, RAY_ADDRESS="127.0.0.1:9", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "server", "serve", "--port", "0", "--data-dir",
                           str(tmp_path), "--no-discovery", "--cluster", "auto"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith("seamwise serve: error: nothing answers "
                                                        "at 127.0.0.1:9"), proc.stderr


def test_ray_without_its_token_is_refused(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "server", "serve", "--port", "0", "--data-dir",
                           str(tmp_path), "--no-discovery", "--cluster", "local:1"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("seamwise serve: error: refusing Ray without token "
                                   "authentication (RAY_AUTH_MODE=disabled): its ports listen on "
                                   "every interface (docs/FARM.md)")


def test_without_cluster_nothing_of_ray_is_imported():
    code = ("import sys; from server.state import ServerState; import server.http_api, "
            "server.cli, server.worker; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
