"""`seamwise doctor`: what is installed, what runs, and what to fix."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_command(commands) -> None:
    from server.config import DEFAULT_PORT

    p = commands.add_parser("doctor", help="check the installation and say what to fix",
                            description="Report the version, the PyTorch build and device, free "
                                        "memory and disk, the model in use, whether the server "
                                        "answers, and whether the Photoshop and Lightroom "
                                        "plugins are installed; one line of advice per problem.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the server's port (default {DEFAULT_PORT})")
    p.add_argument("--data-dir", type=Path, default=None)
    p.set_defaults(func=run)


def _gib(n) -> str:
    return "?" if n is None else f"{n / 1024 ** 3:.1f} GiB"


def run(args: argparse.Namespace) -> int:
    from seamwise.doctor import gather
    from server.config import default_data_dir

    f = gather(args.data_dir or default_data_dir(), args.port)
    if args.json:
        print(json.dumps(f, indent=2))
        return 0
    m, s, install = f["machine"], f["server"], f["install"] or {}
    print(f"Seamwise {f['version']} (Python {f['python']}, {f['platform']})")
    if install:
        print(f"installed in {install.get('prefix')} for {install.get('backend')}: "
              f"{install.get('reason')}")
    print(f"PyTorch {m.get('torch')} ({m.get('torch_build')}), renders on {m.get('device')} "
          f"({m.get('device_name')})")
    if m.get("vram_total_bytes"):
        print(f"GPU memory {_gib(m['vram_free_bytes'])} free of {_gib(m['vram_total_bytes'])}")
    print(f"RAM {_gib(m['ram_free_bytes'])} free of {_gib(m['ram_total_bytes'])}; data in "
          f"{m['data_dir']} ({_gib(m['disk_free_bytes'])} free)")
    default = f["models"].get("default") or {}
    print(f"model: {default.get('name')} ({default.get('family_name')}); "
          f"{f['models'].get('count')} found, `seamwise models list` shows them")
    print(f"server on port {s['port']}: " + ("answers" if s["answers"] else "not answering"))
    c = (s.get("info") or {}).get("cluster")
    if c:
        print(f"cluster: {c['backend']}, {c['actors']} actors ({c.get('busy', 0)} busy), "
              f"{c['gpus']} GPUs, {c['nodes']} boxes")
    for name, plugin in f["plugins"].items():
        state = ("installed" if plugin.get("installed") else plugin.get("state", "not installed"))
        print(f"{name}: {state}" + (f", version {plugin['version']}" if plugin.get("version")
                                    else "") + (f" ({plugin['path']})" if plugin.get("path")
                                                else ""))
    for line in f["advice"]:
        print(f"! {line}")
    if not f["advice"]:
        print("no problems found")
    return 0
