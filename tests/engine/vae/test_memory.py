"""Host memory of an exact tiled decode stays bounded where a full-frame decode could not.

The decode runs in a subprocess that samples its own resident set during the decode. With an
activation RAM budget equal to the output image, everything else spills to disk, so the decode
may add at most budget + the output itself + one tile's working set; a full-frame decode must
hold at least two whole full-resolution activations (a conv's input and output), which at this
size is more than that bound.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))  # not tests/: its engine/ shadows
H, W, TILE = 1024, 768, 128
CHANNELS = 32  # channels of the full-resolution stage
LAYOUT = dict(block_out_channels=(CHANNELS, 8, 8), down_block_types=("DownEncoderBlock2D",) * 3,
              up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1, norm_num_groups=8,
              latent_channels=4, mid_block_add_attention=False)

CHILD = textwrap.dedent(f"""
    import json, threading, numpy as np, psutil, torch
    from diffusers import AutoencoderKL
    from engine.vae.tiled import tiled_decode_into
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vae = AutoencoderKL(**{LAYOUT!r}).eval()
    z = torch.randn(1, 4, {H} // 4, {W} // 4)
    out = np.zeros(({H}, {W}, 3), np.float32); out[:] = 0
    tiled_decode_into(vae, z[:, :, :16, :16], np.zeros((64, 64, 3), np.float32), tile={TILE})  # warm-up
    proc = psutil.Process(); before = proc.memory_info().rss; peak = [before]; done = threading.Event()
    def sample():
        while not done.wait(0.002):
            peak[0] = max(peak[0], proc.memory_info().rss)
    t = threading.Thread(target=sample); t.start()
    tiled_decode_into(vae, z, out, tile={TILE}, ram_budget=out.nbytes)
    done.set(); t.join()
    print(json.dumps(dict(extra=peak[0] - before, output=out.nbytes, finite=bool(np.isfinite(out).all()),
                          spread=float(out.std()))))
""")


@pytest.mark.timeout(900)  # ~10 s of CPU; wall time only matters on a starved machine
def test_tiled_decode_memory_is_bounded():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["finite"] and r["spread"] > 0
    tile_working_set = 64 << 20  # one tile's tensors and allocator slack, independent of image size
    bound = 2 * r["output"] + tile_working_set  # RAM budget (= output) + output + one tile
    full_frame_floor = 2 * H * W * CHANNELS * 4  # a full-resolution conv's input and output, float32
    assert full_frame_floor > bound, "the test image is too small to show anything"
    assert r["extra"] < bound, f"decode added {r['extra'] / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB"
