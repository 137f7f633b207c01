"""`seamwise render`: one photograph in, one out, from the command line.

Every failure a user can cause (a bad file, a mask of the wrong size, a missing model) ends with
one line on stderr and exit status 2; a traceback would mean a bug in Seamwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engine.api import (GENERIC_STEPS, GENERIC_STRENGTH, STRATEGIES, ParamError, RenderParams,
                        as_int, as_number, check_params, parse_params, recommended_settings)

EXIT_USAGE = 2

HELP = """\
Refine (--scale 1) or upscale (--scale 2, 4) one photograph.

The output keeps the input's bit depth (8/16-bit PNG and TIFF, 32-bit float TIFF, 8-bit JPEG),
alpha channel and embedded ICC profile. With --mask only the selected area changes: pixels where
the mask is black come back bit-identical, grey values blend."""

EPILOG = """\
strategies:
  memory          the network runs over the whole frame layer by layer where its activations
                  fit a quarter of RAM, else tiles share noise, context and scene memory
                  (default; seamless)
  naive           independent feathered tiles (fast, visible seams: for comparison)
  multidiffusion  overlapping tiles averaged uniformly
  mixture         overlapping tiles with Gaussian weights (Mixture of Diffusers)
  spot            shifted non-overlapping windows per step (SpotDiffusion)

examples:
  seamwise render in.tif -o out.tif --strength 0.3
  seamwise render in.png -o out.png --scale 2 --seam-mask risk.png
  seamwise render in.tif -o out.tif --mask selection.png --seed 7"""


def add_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "render", help="refine or upscale one image file", description=HELP, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="PNG, TIFF or JPEG file to process")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="where to write the result (.png, .tif, .tiff, .jpg); format from the suffix")
    p.add_argument("--scale", type=int, choices=(1, 2, 4), default=1,
                   help="1 = refine at the same size, 2 or 4 = upscale (default: 1)")
    tiny_strength, tiny_steps = recommended_settings("tiny", 1)
    p.add_argument("--strength", type=_checked("strength"), default=None, metavar="0..1",
                   help="how much the model may change (default: the model's recommendation; "
                        f"bundled model: {tiny_strength:g}, models without one: {GENERIC_STRENGTH:g})")
    p.add_argument("--steps", type=_checked("steps"), default=None,
                   help="denoising steps (default: the model's recommendation; bundled model: "
                        f"{tiny_steps}, models without one: {GENERIC_STEPS})")
    p.add_argument("--seed", type=_checked("seed"), default=0, help="random seed; same seed, same result (default: 0)")
    p.add_argument("--tile", type=_checked("tile"), default=None, metavar="PX",
                   help="tile size in output pixels (default: the model's native size)")
    p.add_argument("--overlap", type=_checked("overlap"), default=None, metavar="PX",
                   help="overlap between tiles in output pixels (default: per strategy)")
    p.add_argument("--strategy", choices=STRATEGIES, default="memory", help="tiling strategy (default: memory)")
    p.add_argument("--mask", type=Path, default=None,
                   help="selection mask image of the same size: white = process, black = keep")
    p.add_argument("--seam-mask", type=Path, default=None, metavar="PATH",
                   help="also write the seam-risk map (greyscale; bright = tiles disagreed)")
    p.add_argument("--model", default="tiny",
                   help="'tiny' (bundled), a diffusers folder or a .safetensors file (default: tiny)")
    p.add_argument("--prompt", default="", help="text prompt, for models that take one")
    p.add_argument("--negative-prompt", default="", metavar="TEXT",
                   help="what guidance steers away from, for models that take a prompt")
    p.add_argument("--guidance", type=_checked("guidance"), default=None, metavar="SCALE",
                   help="classifier-free guidance scale, 1 = off (default: 4 with a prompt for "
                        "Stable Diffusion models, off without one; each guided step costs two "
                        "model evaluations)")
    p.add_argument("--mechanism", action="append", default=[], metavar="NAME=VALUE",
                   help="set one memory mechanism of --strategy memory, for ablations: "
                        "layerwise = auto|on|off (auto: when the activations fit "
                        "layerwise_ram_gib = GiB, default a quarter of RAM); "
                        "halo, thumbnail, kv_bank, position = on|off; groupnorm = "
                        "off|thumbnail|previous|iterate|exact; anchor = off|input|thumbnail; "
                        "may be repeated")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seamwise.alloc import tune_allocator
    # A CPU render allocates and frees tens of MB of activations per tile batch; kept in the heap
    # they are reused instead of mapped and zeroed afresh (a 4 MP render: 15-17 s -> 13 s).
    tune_allocator()
    try:
        return _render(args)
    except UserError as exc:
        print(f"seamwise render: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


class UserError(Exception):
    pass


def _render(args: argparse.Namespace) -> int:
    from engine.imageio import ImageError, Picture, format_for_path, read_image, write_image

    try:
        out_format = format_for_path(args.output)
        picture = read_image(args.input)
        mask = _read_mask(args.mask, picture) if args.mask else None
    except ImageError as exc:
        raise UserError(str(exc)) from None
    if out_format == "jpeg" and (picture.pixels.dtype != np.uint8 or picture.pixels.shape[2] == 4):
        raise UserError(f"JPEG cannot hold this {picture.depth}-bit "
                        f"{picture.pixels.shape[2]}-channel image; write .tif or .png")
    if out_format == "png" and picture.pixels.dtype == np.float32:
        raise UserError("PNG cannot hold 32-bit float pixels; write .tif")
    if args.output.parent and not args.output.parent.is_dir():
        raise UserError(f"output folder {args.output.parent} does not exist")
    params = _params(args)

    from engine.api import Cancelled, EngineError, render

    with _ProgressBar() as bar:
        try:
            result = render(picture.pixels, params, mask=mask, progress=bar.update)
        except (EngineError, ValueError) as exc:
            raise UserError(str(exc)) from None
        except Cancelled:
            raise UserError("cancelled") from None
    try:
        write_image(args.output, Picture(result.image, picture.icc, out_format))
        if args.seam_mask:
            seam_format = format_for_path(args.seam_mask)
            risk = np.clip(result.seam_risk * 255.0 + 0.5, 0, 255).astype(np.uint8)[:, :, None]
            write_image(args.seam_mask, Picture(risk, None, seam_format))
    except ImageError as exc:
        raise UserError(str(exc)) from None
    stats = result.stats
    print(f"wrote {args.output} ({result.image.shape[1]}x{result.image.shape[0]}, "
          f"{picture.depth}-bit, {stats.get('tiles', '?')} tiles, "
          f"{stats.get('seconds', {}).get('total', 0):.1f} s)", file=sys.stderr)
    return 0


def _params(args: argparse.Namespace) -> RenderParams:
    mechanisms = {}
    for item in args.mechanism:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UserError(f"--mechanism expects NAME=VALUE (e.g. groupnorm=exact), got {item!r}")
        mechanisms[name] = _switch_value(value)
    values = {name: getattr(args, name) for name in (
        "scale", "strength", "steps", "seed", "strategy", "tile", "overlap", "prompt",
        "negative_prompt", "guidance")}
    try:
        return parse_params(values, lambda scale: recommended_settings(args.model, scale),
                            RenderParams(model=args.model, mechanisms=mechanisms))
    except ParamError as exc:
        raise UserError(str(exc)) from None


def _switch_value(text: str) -> bool | int | float | str:
    """on/off → bool, numbers → int/float, anything else stays a word (groupnorm=exact)."""
    if text in ("on", "off"):
        return text == "on"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_mask(path: Path, picture) -> np.ndarray:
    """A selection mask: any greyscale (or RGB, first channel) image of the photo's size."""
    from engine.imageio import ImageError, read_image

    mask = read_image(path).pixels
    if mask.shape[:2] != picture.pixels.shape[:2]:
        raise ImageError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                         f"{picture.width}x{picture.height}")
    channel = mask[:, :, 0]
    if channel.dtype == np.uint8:
        return channel
    if channel.dtype == np.uint16:
        return channel.astype(np.float32) / 65535.0
    return np.clip(channel, 0.0, 1.0).astype(np.float32)


def _checked(name: str):
    """An option's type: its text read and range-checked by the engine's own parameter check,
    so that a bad value is a usage error naming the option."""
    def parse(text: str):
        try:
            value = (as_number if name in ("strength", "guidance") else as_int)(name, text)
            check_params(RenderParams(**{name: value}))
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value
    parse.__name__ = name   # argparse names the type in its messages
    return parse


class _ProgressBar:
    """steps x tiles on a terminal; silent when stderr is not a TTY (logs, pipes, CI)."""

    def __init__(self) -> None:
        self._bar = None

    def __enter__(self) -> "_ProgressBar":
        return self

    def update(self, progress) -> None:
        if not sys.stderr.isatty():
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=1000, unit="‰", file=sys.stderr, leave=False,
                             bar_format="{desc} {bar} {percentage:3.0f}% {elapsed}<{remaining}")
        self._bar.set_description_str(
            f"{progress.phase} step {progress.step}/{progress.steps} tile {progress.tile}/{progress.tiles}")
        self._bar.n = int(progress.fraction * 1000)
        self._bar.refresh()

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
