"""The `seamwise` command: render a photograph, run the server, manage paired devices.

The engine and the server are imported only by the subcommand that needs them, so `--help` is
instant and `seamwise tokens` does not load torch.
"""
from __future__ import annotations

import argparse
import sys

from seamwise import __version__

DESCRIPTION = """\
Seamless diffusion for very large photographs.

Seamwise refines or upscales photographs of any size (40-150 MP and beyond) with a diffusion
model, tile by tile, while the tiles share one noise canvas, one set of normalisation statistics
and a scene memory, so that no seam, colour step or texture break shows where tiles meet.
Pixels outside a selection come back bit-identical; bit depth and ICC profile are kept.

Photoshop and Lightroom talk to `seamwise serve`; `seamwise render` works on files directly."""

EPILOG = """\
examples:
  seamwise render photo.tif -o photo-refined.tif
  seamwise render photo.png -o photo-x2.png --scale 2 --seam-mask seams.png
  seamwise serve                      # for the Photoshop panel and the Lightroom plugin
  seamwise serve --lan                # render box for other machines (paired tokens)
  seamwise jobs list                  # every job the running server holds; `jobs cancel`
  seamwise models list                # models found on this machine (ComfyUI, A1111, ...)
  seamwise doctor                     # what is installed, what runs, what to fix

Run `seamwise COMMAND --help` for each command's options."""


def build_parser() -> argparse.ArgumentParser:
    from seamwise import doctor_command, models_command, render_command

    parser = argparse.ArgumentParser(
        prog="seamwise", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"seamwise {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    render_command.add_command(commands)
    models_command.add_command(commands)
    doctor_command.add_command(commands)
    try:
        from server.cli import add_commands
    except ImportError:  # the server package is optional for a render-only install
        pass
    else:
        add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("seamwise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
