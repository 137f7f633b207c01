"""`seamwise models list|add|remove|default`: the model manager on the command line."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_command(commands) -> None:
    p = commands.add_parser(
        "models", help="list the models found on this machine, add folders, pick the default",
        description="Seamwise finds the models of ComfyUI (and its extra_model_paths.yaml), "
                    "AUTOMATIC1111/Forge, InvokeAI, Krita AI Diffusion and Stability Matrix, "
                    "and folders you add, and uses them where they are: nothing is copied, "
                    "moved or deleted.")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the model choices are kept (default: the server's data folder)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="every model found, its family and whether it can run")
    a = sub.add_parser("add", help="reference a model file, a diffusers folder or a folder of "
                                   "models, in place")
    a.add_argument("path", type=Path)
    r = sub.add_parser("remove", help="forget a path added with `add` (the files stay)")
    r.add_argument("ref", help="the path, or the id `models list` shows")
    d = sub.add_parser("default", help="show or set the model `seamwise serve` uses")
    d.add_argument("ref", nargs="?", help="id, name or path of a listed model, or 'tiny'")
    p.set_defaults(func=run)


def _data_dir(args) -> Path:
    from server.config import default_data_dir
    return args.data_dir or default_data_dir()


def _print_table(models) -> None:
    for m in models:
        mark = "*" if m.default else " "
        state = "ok" if m.supported else (m.note or "not supported")
        print(f"{mark} {m.id:12}  {m.family_name:13} {m.name}  [{m.source}; {state}]")
        if m.source != "bundled":
            print(f"  {'':12}  {m.path}")


def run(args: argparse.Namespace) -> int:
    from seamwise import models as mm

    def fail(message: str) -> int:
        if args.json:
            print(json.dumps({"error": message}))
        print(f"seamwise models: error: {message}", file=sys.stderr)
        return 1

    try:
        registry = mm.Registry.load(_data_dir(args))
        action = args.models_command
        if action == "list":
            found = mm.discover(registry)
            if args.json:
                print(json.dumps({"default": registry.default,
                                  "models": [vars(m) for m in found],
                                  "roots": [{"source": r.source, "path": str(r.path)}
                                            for r in mm.roots(registry)]}, indent=2))
            else:
                _print_table(found)
            return 0
        if action == "add":
            path = Path(os.path.abspath(os.path.expanduser(args.path)))
            if not path.exists():
                return fail(f"{path} does not exist")
            added = list(mm.scan(path, "added"))
            if path.is_file() and not any(m.family for m in added):
                kind = mm.classify(path)
                return fail(f"{path.name} is not a recognised diffusion model"
                            + (f" ({kind.note})" if kind.note else ""))
            if str(path) not in registry.added:
                registry.added.append(str(path))
                registry.save()
            if args.json:
                print(json.dumps({"added": str(path), "models": [vars(m) for m in added]}))
            else:
                print(f"referencing {path} in place: {len(added)} model(s)")
                _print_table(added)
            return 0
        if action == "remove":
            target = os.path.abspath(os.path.expanduser(args.ref))
            keep = [p for p in registry.added if p != target and mm.model_id(Path(p)) != args.ref]
            if len(keep) == len(registry.added):
                return fail(f"{args.ref} was not added with `seamwise models add` (models found "
                            "in other tools' folders are theirs to remove)")
            registry.added = keep
            registry.save()
            print(json.dumps({"removed": args.ref}) if args.json else
                  f"no longer referencing {args.ref} (its files are untouched)")
            return 0
        found = mm.discover(registry)
        if args.ref is not None:
            model = mm.find(found, args.ref)
            if model is None:
                return fail(f"no model {args.ref!r}; `seamwise models list` shows them")
            if not model.supported:
                return fail(f"{model.name} ({model.family_name}) cannot be the default: "
                            f"{model.note or 'not supported'}")
            registry.default = model.id
            registry.save()
        model = mm.default_model(registry)
        print(json.dumps(vars(model)) if args.json else f"default model: {model.name} ({model.id})")
        return 0
    except mm.ModelError as e:
        return fail(str(e))
