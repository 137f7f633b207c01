"""`seamwise serve`, `seamwise tokens` and `seamwise pair`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional

from .config import DEFAULT_PORT, Limits, MiB, ServerConfig, default_data_dir


def add_commands(commands) -> None:
    p = commands.add_parser(
        "serve", help="run the server for the Photoshop panel, Lightroom and render clients",
        description="Run the Seamwise server (WebSocket and HTTP API on one port). It binds "
                    "127.0.0.1 unless --lan is given; LAN mode requires paired tokens.")
    p.add_argument("--host", default=None,
                   help="address to bind (default 127.0.0.1; 0.0.0.0 with --lan)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--lan", action="store_true",
                   help="serve other machines: require paired tokens and advertise with mDNS")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"jobs, tokens and results (default {default_data_dir()})")
    p.add_argument("--model", default=None,
                   help="'tiny' (bundled), a diffusers folder or a .safetensors file (default: "
                        "the one `seamwise models default` chose, else 'tiny')")
    p.add_argument("--engine", choices=("real", "identity"), default="real",
                   help="'identity' returns the input unchanged (protocol tests, benchmarks)")
    p.add_argument("--identity-delay", type=float, default=0.0, metavar="SECONDS",
                   help="seconds the identity engine waits per step")
    p.add_argument("--layerwise", choices=("auto", "off"), default=None,
                   help="evaluate frames that fit --layerwise-ram-gib whole, layer by layer (equal "
                        "to the untiled model, no seams) or always in tiles (default: the model's "
                        "choice; the bundled model restores whole frames measurably worse than "
                        "tiles, so it uses tiles)")
    p.add_argument("--layerwise-ram-gib", type=float, default=None, metavar="GIB",
                   help="RAM a render may use to evaluate the whole frame layer by layer; larger "
                        "frames render in tiles (default: a quarter of RAM; 0: always tiles)")
    p.add_argument("--decode-ram-mib", type=int, default=None, metavar="MIB",
                   help="memory image uploads may take to decode at once; larger uploads wait "
                        "their turn, one that needs more is refused (default: half of RAM)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="browser Origin allowed to use the server; may be repeated")
    p.add_argument("--upload-timeout", type=float, default=Limits.upload_idle_s,
                   metavar="SECONDS",
                   help="fail an upload (and free its disk) after this long without a chunk "
                        "(default %(default)g)")
    p.add_argument("--idle-timeout", type=float, default=Limits.idle_timeout_s,
                   metavar="SECONDS",
                   help="close a connection that sends no complete request header for this long "
                        "(default %(default)g)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="in LAN mode, a DNS name clients use to reach this box (besides its IP "
                        "addresses and host name); may be repeated")
    p.add_argument("--no-discovery", action="store_true",
                   help="neither advertise nor browse for other render boxes")
    p.add_argument("--name", default=None, help="name advertised to other machines")
    p.add_argument("--discovery-interface", action="append", default=None, metavar="ADDR",
                   help="interface address for mDNS (default: all); may be repeated")
    p.add_argument("--cluster", default=None, metavar="SPEC",
                   help="render on a Ray cluster (docs/FARM.md): 'local' or 'local:N' starts one "
                        "here with N actors (default one per GPU), 'auto' joins RAY_ADDRESS's, "
                        "'ray://HOST:PORT' joins that one; needs the cluster extra")
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="with --cluster: render actors (default: local:N's N, else one per GPU "
                        "of the cluster, else one per box)")
    p.add_argument("--split-mp", type=float, default=40.0, metavar="MP",
                   help="with --cluster: frames of at least this many output megapixels spread "
                        "their tiles over every idle actor (default %(default)g)")
    p.set_defaults(func=run_serve)

    t = commands.add_parser("tokens", help="list or revoke the tokens of paired devices")
    t.add_argument("--data-dir", type=Path, default=None)
    tsub = t.add_subparsers(dest="tokens_command", metavar="ACTION")
    tsub.required = True
    tsub.add_parser("list", help="list paired devices")
    r = tsub.add_parser("revoke", help="revoke a device's token")
    r.add_argument("token_id")
    t.set_defaults(func=run_tokens)

    q = commands.add_parser("pair", help="print a new one-time pairing code for a LAN server")
    q.add_argument("--data-dir", type=Path, default=None)
    q.set_defaults(func=run_pair)

    j = commands.add_parser(
        "jobs", help="list or cancel the jobs of the running server (its owner only)",
        description="List or cancel every job the server on this data directory holds, from any "
                    "client. Only the account that runs the server can: it reads the secret the "
                    "server keeps in its data directory.")
    j.add_argument("--data-dir", type=Path, default=None)
    jsub = j.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True
    jsub.add_parser("list", help="list all jobs, oldest first")
    c = jsub.add_parser("cancel", help="cancel unfinished jobs (uploads free their disk at once)")
    c.add_argument("job_ids", nargs="*", metavar="JOB")
    c.add_argument("--all", action="store_true", help="cancel every unfinished job")
    j.set_defaults(func=run_jobs)


def run_serve(args: argparse.Namespace) -> int:
    from .app import serve
    host = args.host or ("0.0.0.0" if args.lan else "127.0.0.1")
    if args.layerwise_ram_gib is not None and not args.layerwise_ram_gib >= 0:
        print("seamwise serve: error: --layerwise-ram-gib must be >= 0", file=sys.stderr)
        return 2
    if "null" in args.allow_origin:
        print("seamwise serve: error: the origin 'null' (sandboxed frames, local files) cannot "
              "be allowed", file=sys.stderr)
        return 2
    if not (args.upload_timeout > 0 and args.idle_timeout > 0):
        print("seamwise serve: error: --upload-timeout and --idle-timeout must be > 0",
              file=sys.stderr)
    if args.decode_ram_mib is not None and args.decode_ram_mib < 1:
        print("seamwise serve: error: --decode-ram-mib must be >= 1", file=sys.stderr)
        return 2
    if not args.lan and host not in ("127.0.0.1", "localhost", "::1"):
        print("seamwise serve: error: binding a non-loopback address needs --lan "
              "(which requires paired tokens)", file=sys.stderr)
        return 2
    if args.cluster is not None and not _connect_cluster(args.cluster, args.actors):
        return 1
    data_dir = args.data_dir or default_data_dir()
    config = ServerConfig(host=host, port=args.port, lan=args.lan,
                          data_dir=data_dir, model=args.model or _default_model(data_dir),
                          engine=args.engine, identity_delay=args.identity_delay,
                          layerwise=args.layerwise, layerwise_ram_gib=args.layerwise_ram_gib,
                          allow_origins=tuple(args.allow_origin),
                          allow_hosts=tuple(args.allow_host),
                          limits=Limits(upload_idle_s=args.upload_timeout,
                                        idle_timeout_s=args.idle_timeout),
                          discovery=not args.no_discovery, name=args.name,
                          discovery_interfaces=args.discovery_interface,
                          cluster=args.cluster, actors=args.actors, split_mp=args.split_mp)
    if args.decode_ram_mib is not None:
        config.limits = Limits(decode_ram_bytes=args.decode_ram_mib * MiB)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from seamwise.alloc import tune_allocator
    tune_allocator()
    raise_fd_limit()

    def announce(line: str, file=sys.stdout) -> None:
        print(line, file=file, flush=True)

    try:
        asyncio.run(serve(config, announce))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"seamwise serve: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _connect_cluster(text: str, actors: Optional[int]) -> bool:
    """Start or join the cluster before serving; False (with one line on stderr) if it fails."""
    from .farm.cluster import ClusterError, connect, parse_cluster
    try:
        connect(parse_cluster(text, actors))
    except (ValueError, ClusterError) as exc:
        print(f"seamwise serve: error: {exc}", file=sys.stderr)
        return False
    return True


def raise_fd_limit() -> None:
    """Every client costs a file descriptor; macOS starts processes with a soft limit of 256."""
    try:
        import resource
    except ImportError:          # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    # macOS refuses an unlimited soft limit (and anything above OPEN_MAX): fall back to 10240
    for target in (hard, 10240):
        if soft == infinity or target == infinity or target <= soft or \
                (hard != infinity and target > hard):
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        logging.getLogger("seamwise.server").info("open file limit raised from %d to %d",
                                                  soft, target)
        return


def _default_model(data_dir: Path) -> str:
    """The model the user chose with `seamwise models default`, else the bundled one."""
    from seamwise import models as mm
    try:
        return mm.default_model(mm.Registry.load(data_dir)).spec
    except mm.ModelError as exc:
        print(f"seamwise serve: {exc}; using the bundled model", file=sys.stderr)
        return mm.BUNDLED


def _auth(data_dir):
    from .auth import Auth
    from .store import open_db
    return Auth(open_db(data_dir or default_data_dir()))


def run_tokens(args: argparse.Namespace) -> int:
    auth = _auth(args.data_dir)
    if args.tokens_command == "list":
        tokens = auth.list()
        if not tokens:
            print("no paired devices")
        for t in tokens:
            used = _when(t["last_used"]) if t["last_used"] else "never used"
            print(f"{t['id']}  {t['name']}  (paired {_when(t['created'])}, last used {used})")
        return 0
    if auth.revoke(args.token_id):
        print(f"revoked {args.token_id}")
        return 0
    print(f"seamwise tokens: error: no token {args.token_id}", file=sys.stderr)
    return 1


def _when(ts: float) -> str:
    import time
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def run_pair(args: argparse.Namespace) -> int:
    code = _auth(args.data_dir).new_code()
    print(f"Pairing code (valid 10 minutes, once): {code}")
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    from .owner import HEADER, read_owner_file
    data_dir = args.data_dir or default_data_dir()
    owner = read_owner_file(data_dir)
    if owner is None:
        print(f"seamwise jobs: error: no server is running on {data_dir}", file=sys.stderr)
        return 1

    def call(method: str, path: str) -> dict:
        import json
        import urllib.error
        import urllib.request
        req = urllib.request.Request(owner["url"] + path, method=method,
                                     headers={HEADER: owner["secret"]})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"seamwise jobs: error: {json.loads(exc.read()).get('message')}")
        except OSError:
            raise SystemExit(f"seamwise jobs: error: no server is running on {data_dir} (the "
                             f"last one, at {owner['url']}, does not answer)") from None

    jobs = call("GET", "/v1/admin/jobs")["jobs"]
    if args.jobs_command == "list":
        if not jobs:
            print("no jobs")
        for job in jobs:
            progress = job["progress"] or {}
            done = f" {progress['fraction']:.0%}" if progress.get("fraction") is not None else ""
            print(f"{job['job']}  {job['state']}{done}  {job['width']}x{job['height']}  "
                  f"{job['source']}  by {job['owner'] or 'this computer'}  "
                  f"created {_when(job['created'])}")
        return 0
    unfinished = [j["job"] for j in jobs if j["state"] in ("uploading", "queued", "running")]
    targets = unfinished if args.all else args.job_ids
    if not targets:
        print("seamwise jobs: error: name the jobs to cancel, or --all", file=sys.stderr)
        return 2
    for job_id in targets:
        print(f"{job_id}  {call('POST', f'/v1/admin/jobs/{job_id}/cancel')['state']}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
