"""The shipped post-process action, run under Lua 5.1 against a real server on loopback."""
from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from .lr_sdk import LightroomHost, Rendition

pytestmark = pytest.mark.timeout(120)


def write_tiff(path: Path, pixels: np.ndarray, icc: bytes | None = None) -> np.ndarray:
    tifffile.imwrite(path, pixels, photometric="rgb", iccprofile=icc)
    return pixels


def tiff_icc(path: Path) -> bytes | None:
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags.get(34675)
        return tag.value if tag else None


def random_pixels(rng, height, width, dtype) -> np.ndarray:
    top = np.iinfo(dtype).max
    return rng.integers(0, top, size=(height, width, 3), endpoint=True, dtype=dtype)


def job_posts(host: LightroomHost):
    return [r for r in host.records.requests if r.method == "POST" and r.path == "/v1/jobs"]


def accepted_jobs(host: LightroomHost) -> list[str]:
    return [json.loads(r.body)["job"] for r in job_posts(host) if r.status == 202]


def server_state(server, job: str) -> dict:
    with urllib.request.urlopen(f"{server.address}/v1/jobs/{job}", timeout=10) as response:
        return json.loads(response.read())


def settled_state(server, job: str, timeout: float = 10.0) -> str:
    """The job's state once it has left uploading/queued/running (a cancel lands at the engine's
    next step boundary)."""
    deadline = time.monotonic() + timeout
    while True:
        state = server_state(server, job)["state"]
        if state not in ("uploading", "queued", "running") or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def assert_no_task_errors(host: LightroomHost) -> None:
    """No task raised, and every photo left the filter as it was when reported: a success
    reported (or completed by the renditions loop) before the result was in place goes
    downstream un-enhanced."""
    rec = host.records
    assert rec.task_errors == [], rec.task_errors
    assert rec.late_done == [], f"renditionIsDone after the loop passed photos {rec.late_done}"
    for index, outcome in rec.done.items():
        if outcome.success:
            assert rec.done_files[index] == rec.rendition_paths[index].read_bytes(), \
                f"photo {index} was reported done before its result was written"


def test_three_photos_round_trip(server, tmp_path):
    rng = np.random.default_rng(7)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    originals = {
        1: write_tiff(tmp_path / "a.tif", random_pixels(rng, 48, 64, np.uint16), icc),
        2: write_tiff(tmp_path / "b.tif", random_pixels(rng, 40, 56, np.uint8)),
    }
    png = random_pixels(rng, 32, 40, np.uint8)
    Image.fromarray(png).save(tmp_path / "c.png")
    originals[3] = png
    paths = {1: tmp_path / "a.tif", 2: tmp_path / "b.tif", 3: tmp_path / "c.png"}

    host = LightroomHost()
    settings = host.property_table({"seamwise_address": server.address, "seamwise_modelDefaults": False, "seamwise_steps": 3,
                                    "seamwise_seed": 4294967295, "seamwise_strategy": "mixture"})
    host.run_export(settings, [Rendition(paths[i]) for i in (1, 2, 3)])

    assert_no_task_errors(host)
    assert {i: (o.success, o.message) for i, o in host.records.done.items()} == {
        1: (True, None), 2: (True, None), 3: (True, None)}
    for i in (1, 2):
        result = tifffile.imread(paths[i])
        assert result.dtype == originals[i].dtype
        np.testing.assert_array_equal(result, originals[i])  # identity engine: bit for bit
    assert tiff_icc(paths[1]) == icc
    np.testing.assert_array_equal(np.asarray(Image.open(paths[3])), originals[3])

    posts = job_posts(host)
    assert len(posts) == 3 and all(r.status == 202 for r in posts)
    # the rendered files went out as form parts read from disk by Lightroom, never as Lua strings
    assert posts[0].headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert posts[0].form_parts == [("image", "a.tif", "image/tiff")]
    assert posts[2].form_parts == [("image", "c.png", "image/png")]
    assert posts[0].headers["X-Seamwise"] == "1"
    assert "Authorization" not in posts[0].headers  # loopback: no token
    assert posts[0].url.endswith(
        "/v1/jobs?mode=refine&scale=1&strength=0.35&steps=3&seed=4294967295&strategy=mixture")
    # every job was downloaded and then released on the server
    for job in accepted_jobs(host):
        paths_seen = [(r.method, r.path) for r in host.records.requests]
        assert ("GET", f"/v1/jobs/{job}/result") in paths_seen
        assert ("DELETE", f"/v1/jobs/{job}") in paths_seen
    assert not list(tmp_path.glob("*.seamwise-part"))
    assert host.records.progress and host.records.progress[-1][0] == pytest.approx(1.0)


def test_upscale_doubles_the_exported_photo(server, tmp_path):
    pixels = write_tiff(tmp_path / "a.tif", random_pixels(np.random.default_rng(2), 16, 24, np.uint16))
    host = LightroomHost()
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_mode": "upscale"}),
                    [Rendition(tmp_path / "a.tif")])
    assert host.records.done[1].success, host.records.done[1].message
    assert "mode=upscale&scale=2&" in job_posts(host)[0].url
    # the identity engine enlarges by repeating pixels
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), pixels.repeat(2, 0).repeat(2, 1))


def test_each_photo_is_enhanced_before_the_loop_moves_on(slow_server, tmp_path):
    """Lightroom marks a rendition successful when its renditions loop advances: each photo's
    result must be in place by then. Lightroom's own render of the next photo overlaps the
    server's render of this one."""
    server = slow_server  # 8 steps: 1.6 s per photo
    rng = np.random.default_rng(1)
    renditions = [Rendition(tmp_path / f"{i}.tif") for i in range(3)]
    for r in renditions:
        write_tiff(r.path, random_pixels(rng, 24, 24, np.uint8))
    host = LightroomHost()
    host.render_seconds = 0.5  # Lightroom renders each photo in 0.5 s, upstream
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_mode": "upscale"}),
                    renditions)

    assert_no_task_errors(host)
    assert all(o.success for o in host.records.done.values()) and len(host.records.done) == 3
    for index, content in host.records.done_files.items():  # downstream gets the upscaled file
        assert tifffile.imread(io.BytesIO(content)).shape == (48, 48, 3), index
    # photos 2 and 3 were rendered by Lightroom while the server worked on the one before (each
    # takes 0.5 s to render; how much of photo 1's the plugin waited for depends on how long its
    # version check took, so only the later ones are asserted)
    assert set(host.records.render_waits) == {1, 2, 3}
    assert host.records.render_waits[2] == 0 and host.records.render_waits[3] == 0
    # the progress bar followed the server's steps, and its portion never went back
    captions = [caption for _, caption in host.records.progress]
    assert any(re.fullmatch(r"Seamwise: photo 1 of 3, running \(step [1-8] of 8, about \d+ s left\)", c)
               for c in captions), captions
    portions = [portion for portion, _ in host.records.progress]
    assert portions == sorted(portions) and portions[-1] == pytest.approx(1.0)


def test_bad_file_fails_alone(server, tmp_path):
    rng = np.random.default_rng(3)
    good = [write_tiff(tmp_path / f"good{i}.tif", random_pixels(rng, 20, 30, np.uint16)) for i in range(2)]
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 this is not a TIFF at all" * 10)
    renditions = [Rendition(tmp_path / "good0.tif"), Rendition(tmp_path / "bad.tif"),
                  Rendition(tmp_path / "good1.tif"), Rendition(tmp_path / "d.jpg")]
    (tmp_path / "d.jpg").write_bytes(b"\xff\xd8\xff")

    host = LightroomHost()
    host.run_export(host.property_table({"seamwise_address": server.address}), renditions)

    assert_no_task_errors(host)
    done = host.records.done
    assert done[1].success and done[3].success
    assert not done[2].success
    bad_post = job_posts(host)[1]
    assert bad_post.status == 415
    assert done[2].message == json.loads(bad_post.body)["message"]  # the server's own sentence
    assert not done[4].success and "TIFF or PNG" in done[4].message
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "good0.tif"), good[0])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "good1.tif"), good[1])
    assert len(job_posts(host)) == 3  # the JPEG never left the machine


def test_lightroom_render_failure_and_bad_settings_are_reported(server, tmp_path):
    write_tiff(tmp_path / "a.tif", np.zeros((16, 16, 3), np.uint8))
    host = LightroomHost()
    host.run_export(host.property_table({"seamwise_address": server.address}),
                    [Rendition(tmp_path / "a.tif"), Rendition(tmp_path / "b.tif", render_error="Disk full")])
    assert host.records.done[1].success
    assert (host.records.done[2].success, host.records.done[2].message) == (False, "Disk full")

    host = LightroomHost()
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_modelDefaults": False, "seamwise_steps": 500}),
                    [Rendition(tmp_path / "a.tif")])
    assert host.records.done[1].success is False
    assert "Steps" in host.records.done[1].message
    assert job_posts(host) == []


def test_cancel_stops_the_server_job(slow_server, tmp_path):
    server = slow_server  # 40 steps: 8 s, far longer than the test waits
    rng = np.random.default_rng(5)
    renditions = [Rendition(tmp_path / f"{i}.tif") for i in range(3)]
    originals = [write_tiff(r.path, random_pixels(rng, 16, 16, np.uint8)) for r in renditions]

    host = LightroomHost()

    def cancel_once_running(request):
        if request.method == "GET" and request.status == 200 and "/result" not in request.path:
            if json.loads(request.body).get("state") == "running":
                host.cancel()

    host.response_hooks.append(cancel_once_running)
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_modelDefaults": False, "seamwise_steps": 40}),
                    renditions, timeout=60)

    assert_no_task_errors(host)
    assert [host.records.done[i].success for i in (1, 2, 3)] == [False, False, False]
    assert all(o.message == "Cancelled." for o in host.records.done.values())
    jobs = accepted_jobs(host)
    assert 1 <= len(jobs) <= 2  # the third photo was never uploaded
    deletes = [r for r in host.records.requests if r.method == "DELETE"]
    assert sorted(r.path for r in deletes) == sorted(f"/v1/jobs/{j}" for j in jobs)
    for job in jobs:
        assert settled_state(server, job) == "cancelled"
    for r, original in zip(renditions, originals):  # nothing was written over the renders
        np.testing.assert_array_equal(tifffile.imread(r.path), original)


def test_server_restart_resumes_by_job_id(make_server, tmp_path):
    server = make_server("--identity-delay", "0.15")  # 8 steps: 1.2 s per photo
    rng = np.random.default_rng(11)
    renditions = [Rendition(tmp_path / f"{i}.tif") for i in range(3)]
    originals = [write_tiff(r.path, random_pixels(rng, 32, 32, np.uint16)) for r in renditions]
    host = LightroomHost()
    restarted = threading.Event()
    uploads = []
    lock = threading.Lock()  # the two uploads' answers arrive on two threads

    def crash_after_second_upload(request):
        if request.method != "POST" or request.status != 202:
            return
        with lock:
            uploads.append(request)
            if len(uploads) != 2:
                return
            restarted.set()
        server.kill()
        threading.Timer(1.5, server.restart).start()  # down for a while, then back

    host.response_hooks.append(crash_after_second_upload)
    host.run_export(host.property_table({"seamwise_address": server.address}), renditions, timeout=90)

    assert_no_task_errors(host)
    assert restarted.is_set() and server.starts == 2
    assert {i: o.success for i, o in host.records.done.items()} == {1: True, 2: True, 3: True}, host.records.done
    for r, original in zip(renditions, originals):
        np.testing.assert_array_equal(tifffile.imread(r.path), original)
    # polls failed while the server was down, and nothing was uploaded twice
    assert any(r.error for r in host.records.requests if r.method == "GET")
    assert len(accepted_jobs(host)) == 3 and len(set(accepted_jobs(host))) == 3
    failed_posts = [r for r in job_posts(host) if r.status != 202]
    assert all(r.error == "cannotConnectToHost" for r in failed_posts)


def test_add_to_catalog_stacks_a_copy_above_the_original(server, tmp_path):
    originals_dir = tmp_path / "catalog"
    originals_dir.mkdir()
    (originals_dir / "IMG_1.CR3").write_bytes(b"raw")
    (originals_dir / "IMG_1-seamwise.tif").write_bytes(b"an older result")
    pixels = write_tiff(tmp_path / "IMG_1.tif", np.arange(16 * 20 * 3, dtype=np.uint16).reshape(16, 20, 3) * 67)
    host = LightroomHost()
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_addToCatalog": True}),
                    [Rendition(tmp_path / "IMG_1.tif", photo_path=originals_dir / "IMG_1.CR3")])
    assert_no_task_errors(host)
    assert host.records.done[1].success
    copy = originals_dir / "IMG_1-seamwise-2.tif"
    assert host.records.catalog == [(str(copy), str(originals_dir / "IMG_1.CR3"), "above")]
    np.testing.assert_array_equal(tifffile.imread(copy), pixels)
    assert (originals_dir / "IMG_1-seamwise.tif").read_bytes() == b"an older result"


def test_unreachable_server_fails_each_photo_with_a_clear_message(tmp_path):
    write_tiff(tmp_path / "a.tif", np.zeros((16, 16, 3), np.uint8))
    host = LightroomHost()
    timing = host.require(b"SeamwiseSettings")[b"timing"]
    timing[b"reconnectWindow"] = 1
    timing[b"retryInterval"] = 0.2
    host.run_export(host.property_table({"seamwise_address": "http://127.0.0.1:9"}),
                    [Rendition(tmp_path / "a.tif")])
    outcome = host.records.done[1]
    assert not outcome.success
    assert outcome.message == "The Seamwise server did not answer (cannotConnectToHost)."
    assert len(job_posts(host)) >= 3  # retried through the window


def test_dropped_connections_resume_the_same_job(server, proxy, tmp_path):
    rng = np.random.default_rng(13)
    renditions = [Rendition(tmp_path / f"{i}.tif") for i in range(2)]
    originals = [write_tiff(r.path, random_pixels(rng, 64, 64, np.uint16)) for r in renditions]
    proxy.drop("GET /v1/jobs/", times=3)  # status polls and result downloads alike
    host = LightroomHost()
    host.run_export(host.property_table({"seamwise_address": proxy.address}), renditions)

    assert_no_task_errors(host)
    assert len(proxy.dropped) == 3
    assert [r.error for r in host.records.requests if r.error] == ["networkConnectionLost"] * 3
    assert {i: o.success for i, o in host.records.done.items()} == {1: True, 2: True}
    assert len(accepted_jobs(host)) == 2
    for r, original in zip(renditions, originals):
        np.testing.assert_array_equal(tifffile.imread(r.path), original)


def post_job(server, body: bytes, query: str) -> str:
    request = urllib.request.Request(f"{server.address}/v1/jobs?{query}", data=body, method="POST",
                                     headers={"Content-Type": "image/tiff", "X-Seamwise": "1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["job"]


def delete_job(server, job: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{server.address}/v1/jobs/{job}", method="DELETE"),
                           timeout=10).read()


def test_full_queue_is_waited_out(slow_server, tmp_path):
    server = slow_server
    filler = tmp_path / "filler.tif"
    write_tiff(filler, np.zeros((16, 16, 3), np.uint8))
    with urllib.request.urlopen(f"{server.address}/v1/info", timeout=10) as response:
        max_queued = json.loads(response.read())["limits"]["max_queued"]
    with ThreadPoolExecutor(8) as pool:
        blockers = list(pool.map(lambda _: post_job(server, filler.read_bytes(), "steps=200"), range(max_queued)))
    pixels = write_tiff(tmp_path / "a.tif", random_pixels(np.random.default_rng(4), 16, 16, np.uint16))
    host = LightroomHost()
    freed = threading.Event()

    def free_the_queue(request):
        if request.status == 503 and not freed.is_set():
            freed.set()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda job: delete_job(server, job), blockers))

    host.response_hooks.append(free_the_queue)
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_modelDefaults": False, "seamwise_steps": 1}),
                    [Rendition(tmp_path / "a.tif")])
    assert host.records.done[1].success, host.records.done[1].message
    statuses = [r.status for r in job_posts(host)]
    assert statuses[0] == 503 and statuses[-1] == 202 and len(accepted_jobs(host)) == 1
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), pixels)


def test_job_failing_on_the_server_fails_its_photo_alone(slow_server, tmp_path):
    server = slow_server  # a job renders for 1.6 s: the first photo's job waits queued behind another
    rng = np.random.default_rng(9)
    renditions = [Rendition(tmp_path / f"{i}.tif") for i in range(3)]
    originals = [write_tiff(r.path, random_pixels(rng, 16, 16 + 8 * i, np.uint8)) for i, r in enumerate(renditions)]
    blocker = post_job(server, renditions[0].path.read_bytes(), "steps=8")  # the plugin's jobs queue behind it
    host = LightroomHost()
    damaged = {}
    lock = threading.Lock()  # answers arrive on the request threads

    def damage_a_queued_job_on_disk(request):
        """The stored upload of the first job seen waiting in the queue is lost (a failing disk)."""
        if request.method != "POST" or request.status != 202:
            return
        job = json.loads(request.body)["job"]
        with lock:
            if damaged or server_state(server, job)["state"] != "queued":
                return
            for stored in (server.data_dir / "jobs" / job).iterdir():
                stored.write_bytes(b"")
            damaged[int(request.form_parts[0][1].removesuffix(".tif")) + 1] = job

    host.response_hooks.append(damage_a_queued_job_on_disk)
    host.run_export(host.property_table({"seamwise_address": server.address}), renditions)

    assert_no_task_errors(host)
    ((photo, job),) = damaged.items()
    assert settled_state(server, job) == "failed"
    done = host.records.done
    assert {i: o.success for i, o in done.items()} == {i: i != photo for i in (1, 2, 3)}
    assert done[photo].message == server_state(server, job)["error"]["message"]
    np.testing.assert_array_equal(tifffile.imread(renditions[photo - 1].path), originals[photo - 1])
    delete_job(server, blocker)


def test_large_files_never_become_lua_strings(server, tmp_path):
    """LrHttp bodies are Lua strings: a 150 MP TIFF cannot be one. The upload is a postMultipart
    file part, and the result arrives in Range requests appended to a file."""
    pixels = write_tiff(tmp_path / "a.tif", random_pixels(np.random.default_rng(6), 200, 300, np.uint16))
    assert (tmp_path / "a.tif").stat().st_size > 300_000
    host = LightroomHost()
    host.require(b"SeamwiseSettings")[b"timing"][b"rangeBytes"] = 64 * 1024
    host.run_export(host.property_table({"seamwise_address": server.address}), [Rendition(tmp_path / "a.tif")])

    assert_no_task_errors(host)
    assert host.records.done[1].success, host.records.done[1].message
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), pixels)
    ranges = [r.headers.get("Range") for r in host.records.requests if r.path.endswith("/result")]
    assert len(ranges) >= 5 and ranges[0] == "bytes=0-65535" and ranges[1] == "bytes=65536-131071"
    assert host.records.lua_string_bytes <= 64 * 1024


def test_busy_catalog_reports_the_photo_not_stacked(server, tmp_path):
    originals_dir = tmp_path / "catalog"
    originals_dir.mkdir()
    (originals_dir / "IMG_2.CR3").write_bytes(b"raw")
    write_tiff(tmp_path / "IMG_2.tif", np.zeros((16, 16, 3), np.uint8))
    host = LightroomHost()
    host.catalog_busy = True  # withWriteAccessDo times out: 'aborted'
    host.run_export(host.property_table({"seamwise_address": server.address, "seamwise_addToCatalog": True}),
                    [Rendition(tmp_path / "IMG_2.tif", photo_path=originals_dir / "IMG_2.CR3")])
    assert_no_task_errors(host)
    outcome = host.records.done[1]
    assert not outcome.success and "not stacked in the catalog" in outcome.message
    assert host.records.catalog == []


def test_a_server_of_another_protocol_gets_one_sentence_per_photo(tmp_path):
    """A plugin older or newer than the server: every photo says which side to update, and
    nothing is uploaded."""
    import http.server

    class NewerServer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body = json.dumps({"version": "9.0.0", "protocol": 2}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NewerServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        write_tiff(tmp_path / "a.tif", np.zeros((8, 8, 3), np.uint8))
        host = LightroomHost()
        host.run_export(host.property_table({"seamwise_address": f"http://127.0.0.1:{httpd.server_port}"}),
                        [Rendition(tmp_path / "a.tif")])
    finally:
        httpd.shutdown()
    outcome = host.records.done[1]
    assert not outcome.success
    assert outcome.message == ("The Seamwise server 9.0.0 is newer than this Lightroom plugin 0.1.0: "
                               "update the Seamwise plugin (File > Plug-in Manager).")
    assert job_posts(host) == []
