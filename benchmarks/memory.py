"""Peak host RAM of a render vs image size (CPU, one step).

    python -m benchmarks.memory [--quick] [--huge] [--trained]

Each size runs in a fresh process; the figure is that process's peak resident set (ru_maxrss),
with the resident set after imports and model load reported separately. The canvas is float32 on
the host, so RAM should grow linearly with the pixels (bytes per output pixel), while device
memory (here: the same host) depends only on tile and batch size. Each size runs with
`layerwise=auto` (`memory` evaluates the whole canvas layerwise where its activations fit a
quarter of RAM; the `path` column says which ran) and with `--tiles-too` also in tiles
(layerwise off), for the time and memory ratio of the two paths. By default the network is a
narrow random-weight one of the bundled model's geometry (same tiles and windows, so the same
canvas buffers) to keep the 64 MP run within minutes on a 2-core CPU; --trained uses the real
weights.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from engine import api
from engine.adapters.tiny import TinyAdapter
side, trained, strategy, layerwise = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
if trained:
    adapter = TinyAdapter.load(torch.device("cpu"), torch.float32)
else:
    from benchmarks.work import NARROW
    adapter = TinyAdapter.from_config(torch.device("cpu"), torch.float32, NARROW)
rng = np.random.default_rng(0)
img = np.repeat(np.repeat(rng.integers(0, 256, (side // 16 + 1, side // 16 + 1, 3), dtype=np.uint8), 16, 0), 16, 1)[:side, :side]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
mech = {"layerwise": layerwise}
params = api.RenderParams(strategy=strategy, steps=1, strength=0.3, mechanisms=mech)
r = api.render(img, params, adapter=adapter)
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "base_kb": base,
                  "seconds": round(time.perf_counter() - t, 1), "tiles": r.stats["tiles"],
                  "layerwise": r.stats["layerwise"], "storage": r.stats["layerwise_storage"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 MP only")
    ap.add_argument("--huge", action="store_true", help="add a 151 MP (12288²) render")
    ap.add_argument("--trained", action="store_true", help="the trained bundled weights")
    ap.add_argument("--strategy", default="memory")
    ap.add_argument("--tiles-too", action="store_true", help="also run each size with layerwise off")
    args = ap.parse_args()
    sizes = [2048] if args.quick else [2048, 4096, 8192] + ([12288] if args.huge else [])
    rows = []
    print(f"{'MP':>5s} {'path':>17s} {'peak MiB':>9s} {'after load MiB':>15s} {'bytes/px':>9s} "
          f"{'sec':>7s} {'tiles':>6s}")
    for side in sizes:
        for layerwise in ("auto", "off") if args.tiles_too else ("auto",):
            out = subprocess.run([sys.executable, "-c", CHILD, str(side), "1" if args.trained else "0",
                                  args.strategy, layerwise], capture_output=True, text=True, check=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            mp = side * side / 1e6
            path = f"layerwise {m['storage']}" if m["layerwise"] else "tiles"
            row = dict(megapixels=round(mp, 1), path=path,
                       layerwise_mode=layerwise, peak_mib=round(m["peak_kb"] / 1024),
                       base_mib=round(m["base_kb"] / 1024), seconds=m["seconds"], tiles=m["tiles"],
                       bytes_per_pixel=round((m["peak_kb"] - m["base_kb"]) * 1024 / (side * side), 1))
            rows.append(row)
            print(f"{row['megapixels']:5.1f} {row['path']:>17s} {row['peak_mib']:9d} {row['base_mib']:15d} "
                  f"{row['bytes_per_pixel']:9.1f} {row['seconds']:7.1f} {row['tiles']:6d}", flush=True)
    print(json.dumps({"benchmark": "memory", "quick": args.quick, "machine": "2-core CPU",
                      "trained": args.trained, "strategy": args.strategy, "rows": rows}))


if __name__ == "__main__":
    main()
