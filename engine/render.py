"""`render`: numpy image (+ mask) in, numpy image + seam-risk map + statistics out.

The steps, in the order of diffusers' img2img pipeline, each a function below: check the inputs →
open the model → prepare the source (the image at output size in [-1, 1], padded to the model's
grid) and its conditioning → encode it to the canvas → prepare the mask → denoise the canvas
(lockstep sampling with the canvas denoiser) → decode → finish (hold the frame to the input, as
the model's settings say: engine.restoration) → compose in the caller's dtype, copying
input pixels wherever the mask is 0, so the outside of a selection is bit-identical.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from engine import colour
from engine.adapters import ModelAdapter, open_model
from engine.denoise.canvas import CanvasDenoiser, Counters, TileRunner
from engine.denoise.seam_risk import SeamRisk
from engine.device import make_deterministic
from engine.layerwise.plan import UnsupportedModel
from engine.mechanisms.halo import halo_for
from engine.mechanisms.switches import Mechanisms
from engine.preview import PreviewTap
from engine.restoration.consistency import finish
from engine.sampling.noise import NoiseField
from engine.sampling.sampler import make_scheduler, sample
from engine.tiling.strategies import Strategy, make_strategy
from engine.types import (Cancelled, EngineError, Phase, Progress, ProgressCallback, RenderParams,
                          RenderResult, Unit, check_params)

MAX_OUTPUT_PIXELS = 400_000_000   # 400 MP: beyond this even the host canvas does not fit sensibly
DTYPE_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


def render(image: np.ndarray, params: RenderParams, mask: Optional[np.ndarray] = None,
           progress: Optional[ProgressCallback] = None,
           should_cancel: Optional[Callable[[], bool]] = None, *,
           adapter: Optional[ModelAdapter] = None, device: Optional[str] = None,
           batch_size: int = 4, icc: Optional[bytes] = None, profile: Optional[str] = None,
           tile_runner: Optional[TileRunner] = None) -> RenderResult:
    """Refine (scale 1) or upscale (2, 4) `image`, only where `mask` > 0.

    `adapter` overrides `params.model` (an already loaded model: a Session keeps one warm, tests
    pass small random-weight ones); `device` overrides the automatic choice. `icc` (the image's
    embedded profile) or else `profile` (its name) say what colours the pixels mean; the model
    sees them converted to its own colour space (engine.colour). `tile_runner` evaluates each
    step's tile batches elsewhere (engine.denoise.shared).
    """
    check_inputs(image, params, mask)
    seconds: dict[str, float] = {}
    counters = Counters(seconds=seconds)
    events = _Events(params.steps, progress, should_cancel)
    s, steps = params.scale, params.steps
    oh, ow = image.shape[0] * s, image.shape[1] * s

    started = render_started = time.perf_counter()
    events.report(Phase.LOAD, 0, 0, 0, 0.0)
    adapter, mech = prepare_model(params, adapter, device)
    colours = plan_colours(icc, profile, image, adapter)
    seconds["load"] = time.perf_counter() - started
    events.check_cancel()

    started = time.perf_counter()
    source = prepare_source(image, s, adapter, colours)
    cond = adapter.conditioning(params, source)
    cond.position = mech.position
    events.report(Phase.ENCODE, 0, 0, 0, 0.02)
    reference = encode(adapter, source)
    ch, cw = reference.shape[-2:]
    mask_out, active = prepare_mask(mask, s, source.shape[-2:], adapter)
    events.tap = PreviewTap(adapter, (oh, ow))   # a small picture of the latest x0
    events.tap.update(reference)                  # before the first step: the photo as it came
    seconds["encode"] = time.perf_counter() - started
    events.check_cancel()

    started = time.perf_counter()
    risk = SeamRisk(ch, cw)
    canvas, denoiser = denoise(adapter, cond, reference, params, mech, active, batch_size, risk,
                               events, counters, tile_runner)
    strategy = denoiser.strategy
    seconds["denoise"] = time.perf_counter() - started
    events.check_cancel()

    started = time.perf_counter()
    events.report(Phase.DECODE, steps, 0, 0, 0.92, preview=events.preview())
    with torch.inference_mode():
        out = decode(adapter, canvas)[..., :oh, :ow]
        del canvas, source, reference, cond, denoiser   # the decoded image may reuse their memory
        out = finish_render(adapter, out.clamp_(-1, 1).add_(1).div_(2), image, s, colours)
        result = _compose(image, out, mask_out, s, colours)
        del out
    seam = seam_map(risk, adapter.vae_scale, oh, ow, mask_out)
    seconds["decode"] = time.perf_counter() - started
    seconds["total"] = time.perf_counter() - render_started
    events.report(Phase.DECODE, steps, 0, 0, 1.0)
    return RenderResult(image=result, seam_risk=seam.numpy(),
                        stats={**_stats(params, adapter, mech, strategy, counters, [ch, cw]),
                               "colour": colours.stats(), "warnings": list(colours.warnings)})


def _stats(params: RenderParams, adapter: ModelAdapter, mech: Mechanisms, strategy: Strategy,
           counters: Counters, canvas: list[int]) -> dict:
    """What ran and what it cost (RenderResult.stats); sizes in output px."""
    return {
        "tiles": counters.tiles, "model_calls": counters.model_calls,
        "token_evals": counters.token_evals, "oom_retries": counters.retries,
        "layerwise": counters.layerwise, "layerwise_storage": counters.layerwise_storage,
        "layerwise_window": (counters.layerwise_window * adapter.vae_scale
                             if counters.layerwise_window else None),
        "seconds": {k: round(v, 4) for k, v in counters.seconds.items()},
        "device": str(adapter.device), "dtype": str(adapter.dtype).replace("torch.", ""),
        "strategy": strategy.name, "tile": strategy.tile * adapter.vae_scale,
        "overlap": strategy.overlap * adapter.vae_scale, "steps": params.steps,
        "scheduler": params.scheduler or "ddim",
        "mechanisms": {k: v for k, v in vars(mech).items()} if strategy.name == "memory" else {},
        "canvas": canvas,
    }


class _Events:
    """The ways a render talks back while it runs: progress reports with a live preview (from
    `tap`, once the canvas exists), and the cancel check."""

    def __init__(self, steps: int, progress: Optional[ProgressCallback],
                 should_cancel: Optional[Callable[[], bool]]):
        self.steps, self.progress, self.should_cancel = steps, progress, should_cancel
        self.tap: Optional[PreviewTap] = None

    def preview(self):
        return self.tap.latest if self.tap is not None and self.tap.made else None

    def report(self, phase: Phase, step: int, tile: int, tiles: int, fraction: float,
               unit: Unit = Unit.TILE, preview=None) -> None:
        if self.progress:
            self.progress(Progress(phase, step, self.steps, tile, tiles, float(min(1.0, fraction)),
                                   preview, unit))

    def on_tile(self, step: int, done: int, tiles: int, unit: Unit) -> None:
        """The canvas denoiser's report: denoising spans 5% to 90% of the render."""
        self.report(Phase.DENOISE, step, done, tiles,
                    0.05 + 0.85 * (step + done / max(1, tiles)) / self.steps, unit,
                    preview=self.preview())

    def check_cancel(self) -> None:
        if self.should_cancel and self.should_cancel():
            raise Cancelled("render cancelled")


def check_inputs(image: np.ndarray, params: RenderParams, mask: Optional[np.ndarray]) -> None:
    """Refuse, before any work, what cannot be rendered: EngineError (ParamError for params)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise EngineError("image must be an H x W x 3 or H x W x 4 array")
    if image.dtype not in DTYPE_SCALE:
        raise EngineError(f"image dtype {image.dtype} not supported (uint8, uint16, float32)")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise EngineError("image is empty")
    check_params(params)
    if h * w * params.scale ** 2 > MAX_OUTPUT_PIXELS:
        raise EngineError(f"output of {h * params.scale} x {w * params.scale} px is larger than "
                          f"the {MAX_OUTPUT_PIXELS // 1_000_000} MP limit")
    if mask is not None:
        if not isinstance(mask, np.ndarray) or mask.shape != (h, w):
            raise EngineError(f"mask must be an H x W array matching the image ({h} x {w})")
        if mask.dtype not in (np.uint8, np.float32):
            raise EngineError("mask must be uint8 (0..255) or float32 (0..1)")
    try:
        Mechanisms.from_dict(params.mechanisms)   # refuse bad switches before loading anything
    except ValueError as e:
        raise EngineError(str(e)) from e


def prepare_model(params: RenderParams, adapter: Optional[ModelAdapter],
                  device: Optional[str]) -> tuple[ModelAdapter, Mechanisms]:
    """The model (loaded unless given) and the switches it runs with: its measured defaults
    (engine.adapters.base) under the caller's."""
    if adapter is None:
        adapter = open_model(params.model, device)
    make_deterministic(adapter.device)
    return adapter, Mechanisms.from_dict({**getattr(adapter, "default_mechanisms", {}),
                                          **params.mechanisms})


def plan_colours(icc: Optional[bytes], profile: Optional[str], image: np.ndarray,
                 adapter: ModelAdapter) -> colour.ColourPlan:
    """How the document's colours reach the model's own colour space, and back."""
    try:
        return colour.plan(icc, profile, image.dtype, getattr(adapter, "colour_space", None))
    except colour.ColourError as e:
        raise EngineError(str(e)) from e


def prepare_source(image: np.ndarray, scale: int, adapter: ModelAdapter,
                   colours: colour.ColourPlan) -> torch.Tensor:
    """The image's colour channels in the model's colour space at output size in [-1, 1], padded
    on the bottom and right to the model's grid. The only full-size float copy of the photo kept
    through sampling; _compose rereads the caller's array (host RAM at 150 MP: benchmarks.memory)."""
    source = _resize(_model_unit(image, colours), scale).mul_(2).sub_(1).clamp_(-1, 1)
    step_px = adapter.downsample_factor * adapter.vae_scale
    ph, pw = (-source.shape[-2]) % step_px, (-source.shape[-1]) % step_px
    if ph or pw:
        source = F.pad(source, (0, pw, 0, ph), mode="replicate")
    return source


def encode(adapter: ModelAdapter, source: torch.Tensor) -> torch.Tensor:
    """The source as the canvas the sampler steps (float32 on the host)."""
    try:
        adapter.check_room(source.shape[-2], source.shape[-1])
        return adapter.encode(source).float().cpu()
    except OSError as e:   # the tiled VAE's activation store: too little disk, or full
        raise EngineError(f"cannot keep the encoder's and decoder's activations: {e}") from e


def prepare_mask(mask: Optional[np.ndarray], scale: int, padded_hw: tuple[int, int],
                 adapter: ModelAdapter) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(the mask at output size in 0..1, the canvas pixels it touches), or (None, None)."""
    mask_out = _mask_unit(mask)
    if mask_out is None:
        return None, None
    if scale > 1:
        mask_out = F.interpolate(mask_out, scale_factor=scale, mode="bilinear", align_corners=False)
    ph, pw = padded_hw[0] - mask_out.shape[-2], padded_hw[1] - mask_out.shape[-1]
    m = F.pad(mask_out, (0, pw, 0, ph))
    active = (F.max_pool2d(m, adapter.vae_scale) if adapter.vae_scale > 1 else m)[0, 0] > 0
    return mask_out, active


def denoise(adapter: ModelAdapter, cond, reference: torch.Tensor, params: RenderParams,
            mech: Mechanisms, active: Optional[torch.Tensor], batch_size: int, risk: SeamRisk,
            events: _Events, counters: Counters,
            runner: Optional[TileRunner] = None) -> tuple[torch.Tensor, CanvasDenoiser]:
    """The sampling step of a render, its failures as EngineErrors a user can act on."""
    try:
        return denoise_canvas(adapter, cond, reference, params, mech, active=active,
                              batch_size=batch_size, risk=risk, on_tile=events.on_tile,
                              should_cancel=events.should_cancel, counters=counters,
                              tap=events.tap, runner=runner)
    except (UnsupportedModel, OverflowError) as e:
        raise EngineError(f"mechanisms.layerwise: {e}") from e
    except OSError as e:   # the activation store's disk: full, or gone
        raise EngineError(f"cannot keep the render's activations on disk: {e}") from e


def decode(adapter: ModelAdapter, canvas: torch.Tensor) -> torch.Tensor:
    """The canvas back to a [-1, 1] image at (padded) output size, float32 on the host."""
    try:
        return adapter.decode(canvas).float().cpu()
    except OSError as e:
        raise EngineError(f"cannot keep the decoder's activations: {e}") from e


def finish_render(adapter: ModelAdapter, out: torch.Tensor, image: np.ndarray,
                  scale: int, colours: colour.ColourPlan) -> torch.Tensor:
    """The decoded frame ([0, 1], the model's colour space) held to the input, seen in the same
    space, where the model may be wrong, as the model's own settings say (`adapter.finishing`,
    engine.restoration.consistency)."""
    how = getattr(adapter, "finishing", {}).get(scale)
    if how is None:
        return out
    return finish(out, _model_unit(image, colours).clamp_(0, 1), scale, how)


def seam_map(risk: SeamRisk, vae_scale: int, oh: int, ow: int,
             mask_out: Optional[torch.Tensor]) -> torch.Tensor:
    """The seam-risk map at output size, zero outside the selection."""
    ch, cw = risk.total.shape
    seam = risk.map(ch * vae_scale, cw * vae_scale)[:oh, :ow]
    if mask_out is not None:
        seam = seam.mul_(mask_out[0, 0] > 0)
    return seam


def _to_unit(a: np.ndarray) -> torch.Tensor:
    """H x W x C array → [1, C, H, W] float32 in [0, 1] (float images taken as is)."""
    with warnings.catch_warnings():  # read-only input arrays are only read here
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
    # Always a fresh tensor: callers scale it in place, and a float32 array would be shared.
    return t.to(torch.float32, copy=True).div_(DTYPE_SCALE[a.dtype])


def _from_unit(t: torch.Tensor, dtype: np.dtype, consume: bool = False) -> np.ndarray:
    """[1, C, H, W] in [0, 1] → H x W x C in `dtype`. `consume`: scale and round in t's own
    memory (the caller is done with it), so a 150 MP result needs no canvas-sized temporaries."""
    a = t[0].permute(1, 2, 0).numpy()
    if dtype == np.float32:
        return a.astype(np.float32)
    s = DTYPE_SCALE[np.dtype(dtype)]
    a = np.multiply(a, s, out=a) if consume else a * s
    return np.clip(np.rint(a, out=a), 0, s, out=a).astype(dtype)


def _resize(t: torch.Tensor, scale: int) -> torch.Tensor:
    if scale == 1:
        return t
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)


def _mask_unit(mask: Optional[np.ndarray]) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m = torch.from_numpy(np.ascontiguousarray(mask)).float()
    if mask.dtype == np.uint8:
        m = m / 255.0
    return m.clamp(0, 1)[None, None]


def denoise_canvas(adapter: ModelAdapter, cond, reference: torch.Tensor, params: RenderParams,
                   mech: Mechanisms, active: Optional[torch.Tensor] = None, batch_size: int = 4,
                   risk: Optional[SeamRisk] = None, on_tile=None, should_cancel=None,
                   counters: Optional[Counters] = None,
                   tap: Optional[PreviewTap] = None,
                   runner: Optional[TileRunner] = None) -> tuple[torch.Tensor, CanvasDenoiser]:
    """The sampling core on an already built canvas (benchmarks compare canvases directly).
    `tap` receives each step's x0 for live previews; `runner` evaluates tile batches elsewhere."""
    tile = adapter.default_tile if params.tile is None else max(1, params.tile // adapter.vae_scale)
    overlap = None if params.overlap is None else params.overlap // adapter.vae_scale
    grid = adapter.downsample_factor
    strategy = make_strategy(params.strategy, tile, overlap, grid, seed=params.seed,
                             feather=mech.feather)
    if params.strategy == "memory":
        strategy = make_strategy("memory", strategy.tile, 2 * halo_for(strategy.overlap, mech.halo),
                                 grid, seed=params.seed, feather=mech.feather)
    try:
        scheduler = make_scheduler(params.scheduler, adapter.scheduler_config)
    except ValueError as e:
        raise EngineError(str(e)) from e
    denoiser = CanvasDenoiser(adapter, cond, strategy, mech, reference, active=active,
                              batch_size=batch_size, risk=risk, on_tile=on_tile,
                              should_cancel=should_cancel, counters=counters, runner=runner)
    with torch.inference_mode(), denoiser:
        canvas = sample(denoiser if tap is None else tap.wrap(denoiser), scheduler, reference,
                        NoiseField(params.seed), params.steps, params.strength)
    return canvas, denoiser


def _model_unit(image: np.ndarray, colours: colour.ColourPlan) -> torch.Tensor:
    """The RGB channels as [1, 3, H, W] float in the model's colour space, 0..1 nominal."""
    return colours.model_unit(image[..., :3]) if colours.active else _to_unit(image[..., :3])


def _compose(image: np.ndarray, out: torch.Tensor, mask: Optional[torch.Tensor],
             scale: int, colours: Optional[colour.ColourPlan] = None) -> np.ndarray:
    """Blend the render (consumed) into the (upscaled) input by the mask, in the caller's dtype.

    Where the mask is 0 the caller's own pixels are copied, so the outside is bit-identical.
    A colour-managed render blends in the model's space over the unclipped input, then converts
    back to the document's profile."""
    base = None
    if colours is not None and colours.active:
        model_base = _resize(_model_unit(image, colours), scale)
        out = colour.blend_unclipped(out, model_base, mask)
        out = (colours.document_change(out, model_base, _to_unit(image[..., :3])) if scale == 1
               else colours.document_unit(out))
        del model_base
    elif mask is not None or scale > 1:
        base = _resize(_to_unit(image[..., :3]), scale)
        if image.dtype != np.float32:
            base = base.clamp_(0, 1)
        if mask is not None:
            out = out.sub_(base).mul_(mask).add_(base)
    pixels = _from_unit(out, image.dtype, consume=True)
    del out
    if mask is not None and (scale == 1 or base is not None):
        keep = (mask[0, 0] <= 0).numpy()
        pixels[keep] = image[..., :3][keep] if scale == 1 else _from_unit(base, image.dtype)[keep]
    if image.shape[2] == 4:
        alpha = image[..., 3:]
        if scale > 1:
            a = _resize(_to_unit(alpha), scale)
            a = a if image.dtype == np.float32 else a.clamp_(0, 1)
            alpha = _from_unit(a, image.dtype, consume=True)
        pixels = np.concatenate([pixels, alpha], axis=2)
    return np.ascontiguousarray(pixels)
