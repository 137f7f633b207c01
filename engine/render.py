"""`render`: numpy image (+ mask) in, numpy image + seam-risk map + statistics out.

Flow: validate → image to [-1, 1] NCHW at output size (bicubic for ×2/×4) → adapter conditioning
and canvas → lockstep sampling with the canvas denoiser → decode → compose in the caller's dtype,
copying input pixels wherever the mask is 0, so the outside of a selection is bit-identical.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from engine import api, colour
from engine.adapters import ModelAdapter, load_adapter
from engine.canvas import CancelRequested, CanvasDenoiser, Counters
from engine.device import make_deterministic, pick_device, pick_dtype
from engine.layerwise.plan import UnsupportedModel
from engine.memory.halo import halo_for
from engine.memory.noise import NoiseField
from engine.memory.switches import Mechanisms
from engine.sampler import make_scheduler, sample
from engine.seam_risk import SeamRisk
from engine.strategies import STRATEGIES, make_strategy

MAX_OUTPUT_PIXELS = 400_000_000   # 400 MP: beyond this even the host canvas does not fit sensibly
DTYPE_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


def _validate(image: np.ndarray, params: api.RenderParams, mask: Optional[np.ndarray]) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise api.EngineError("image must be an H x W x 3 or H x W x 4 array")
    if image.dtype not in DTYPE_SCALE:
        raise api.EngineError(f"image dtype {image.dtype} not supported (uint8, uint16, float32)")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise api.EngineError("image is empty")
    if params.scale not in (1, 2, 4):
        raise api.EngineError("scale must be 1, 2 or 4")
    if h * w * params.scale ** 2 > MAX_OUTPUT_PIXELS:
        raise api.EngineError(f"output of {h * params.scale} x {w * params.scale} px is larger than "
                              f"the {MAX_OUTPUT_PIXELS // 1_000_000} MP limit")
    if params.strategy not in STRATEGIES:
        raise api.EngineError(f"unknown strategy {params.strategy!r}; choose from {', '.join(STRATEGIES)}")
    if not 1 <= params.steps <= 1000:
        raise api.EngineError("steps must be between 1 and 1000")
    if not 0 < params.strength <= 1:
        raise api.EngineError("strength must be in (0, 1]")
    if params.tile is not None and params.tile < 16:
        raise api.EngineError("tile must be at least 16 px")
    if params.overlap is not None and params.overlap < 0:
        raise api.EngineError("overlap must be >= 0")
    if mask is not None:
        if not isinstance(mask, np.ndarray) or mask.shape != (h, w):
            raise api.EngineError(f"mask must be an H x W array matching the image ({h} x {w})")
        if mask.dtype not in (np.uint8, np.float32):
            raise api.EngineError("mask must be uint8 (0..255) or float32 (0..1)")


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


def render(image: np.ndarray, params: api.RenderParams, mask: Optional[np.ndarray] = None,
           progress: Optional[api.ProgressCallback] = None,
           should_cancel: Optional[Callable[[], bool]] = None, *,
           adapter: Optional[ModelAdapter] = None, device: Optional[str] = None,
           batch_size: int = 4, icc: Optional[bytes] = None,
           profile: Optional[str] = None) -> api.RenderResult:
    """Refine (scale 1) or upscale (2, 4) `image`, only where `mask` > 0.

    `adapter` overrides `params.model` (an already loaded model: the server keeps one warm, tests
    pass small random-weight ones); `device` overrides the automatic choice. `icc` (the image's
    embedded profile) or else `profile` (its name) say what colours the pixels mean; the model
    sees them converted to its own colour space (engine.colour).
    """
    _validate(image, params, mask)
    try:
        Mechanisms.from_dict(params.mechanisms)   # refuse bad switches before loading anything
    except ValueError as e:
        raise api.EngineError(str(e)) from e
    seconds: dict[str, float] = {}
    counters = Counters(seconds=seconds)

    def report(phase: str, step: int, steps: int, tile: int, tiles: int, fraction: float,
               preview=None, unit: str = "tile") -> None:
        if progress:
            progress(api.Progress(phase, step, steps, tile, tiles, float(min(1.0, fraction)), preview,
                                  unit))

    def check_cancel() -> None:
        if should_cancel and should_cancel():
            raise api.Cancelled("render cancelled")

    started = render_started = time.perf_counter()
    report("load", 0, params.steps, 0, 0, 0.0)
    if adapter is None:
        dev = pick_device(device)
        try:
            adapter = load_adapter(params.model, dev, pick_dtype(dev))
        except (FileNotFoundError, ValueError, OSError) as e:
            raise api.EngineError(f"cannot load model {params.model!r}: {e}") from e
    make_deterministic(adapter.device)
    # Defaults measured for this model (engine.adapters.base), under the caller's switches.
    mech = Mechanisms.from_dict({**getattr(adapter, "default_mechanisms", {}), **params.mechanisms})
    try:
        colours = colour.plan(icc, profile, image.dtype, getattr(adapter, "colour_space", None))
    except colour.ColourError as e:
        raise api.EngineError(str(e)) from e
    seconds["load"] = time.perf_counter() - started
    check_cancel()

    # --- image → canvas ---------------------------------------------------------------------
    started = time.perf_counter()
    h, w, channels = image.shape
    s = params.scale
    oh, ow = h * s, w * s
    # The [-1, 1] canvas source is the only full-size float copy of the photo kept through
    # sampling; _compose rereads the caller's array (host RAM at 150 MP: benchmarks.memory).
    source = _resize(_model_unit(image, colours), s).mul_(2).sub_(1).clamp_(-1, 1)
    step_px = adapter.downsample_factor * adapter.vae_scale
    ph, pw = (-oh) % step_px, (-ow) % step_px
    if ph or pw:
        source = F.pad(source, (0, pw, 0, ph), mode="replicate")
    cond = adapter.conditioning(params, source)
    cond.position = mech.position
    report("encode", 0, params.steps, 0, 0, 0.02)
    try:
        adapter.check_room(source.shape[-2], source.shape[-1])
        reference = adapter.encode(source).float().cpu()
    except OSError as e:   # the tiled VAE's activation store: too little disk, or full
        raise api.EngineError(f"cannot keep the encoder's and decoder's activations: {e}") from e
    ch, cw = reference.shape[-2:]
    mask_out = _mask_unit(mask)
    if mask_out is not None and s > 1:
        mask_out = F.interpolate(mask_out, scale_factor=s, mode="bilinear", align_corners=False)
    active = None
    if mask_out is not None:
        m = F.pad(mask_out, (0, pw, 0, ph))
        active = (F.max_pool2d(m, adapter.vae_scale) if adapter.vae_scale > 1 else m)[0, 0] > 0
    seconds["encode"] = time.perf_counter() - started
    check_cancel()

    # --- sampling -----------------------------------------------------------------------------
    started = time.perf_counter()
    steps = params.steps

    def on_tile(step: int, done: int, tiles: int, unit: str) -> None:
        report("denoise", step, steps, done, tiles, 0.05 + 0.85 * (step + done / max(1, tiles)) / steps,
               unit=unit)

    risk = SeamRisk(ch, cw)
    try:
        canvas, denoiser = denoise_canvas(adapter, cond, reference, params, mech, active=active,
                                          batch_size=batch_size, risk=risk, on_tile=on_tile,
                                          should_cancel=should_cancel, counters=counters)
    except CancelRequested as e:
        raise api.Cancelled("render cancelled") from e
    except (UnsupportedModel, OverflowError) as e:
        raise api.EngineError(f"mechanisms.layerwise: {e}") from e
    except OSError as e:   # the activation store's disk: full, or gone
        raise api.EngineError(f"cannot keep the render's activations on disk: {e}") from e
    strategy = denoiser.strategy
    seconds["denoise"] = time.perf_counter() - started
    check_cancel()

    # --- canvas → image -------------------------------------------------------------------------
    started = time.perf_counter()
    report("decode", steps, steps, 0, 0, 0.92)
    with torch.inference_mode():
        try:
            out = adapter.decode(canvas).float().cpu()[..., :oh, :ow]
        except OSError as e:
            raise api.EngineError(f"cannot keep the decoder's activations: {e}") from e
        del canvas, source, reference, cond, denoiser   # the decoded image may reuse their memory
        result = _compose(image, out.clamp_(-1, 1).add_(1).div_(2), mask_out, s, colours)
        del out
    seam = risk.map(ch * adapter.vae_scale, cw * adapter.vae_scale)[:oh, :ow]
    if mask_out is not None:
        seam = seam.mul_(mask_out[0, 0] > 0)
    seconds["decode"] = time.perf_counter() - started
    seconds["total"] = time.perf_counter() - render_started
    report("decode", steps, steps, 0, 0, 1.0)
    stats = {
        "tiles": counters.tiles, "model_calls": counters.model_calls,
        "token_evals": counters.token_evals, "oom_retries": counters.retries,
        "layerwise": counters.layerwise, "layerwise_storage": counters.layerwise_storage,
        "layerwise_window": (counters.layerwise_window * adapter.vae_scale
                             if counters.layerwise_window else None),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "device": str(adapter.device), "dtype": str(adapter.dtype).replace("torch.", ""),
        "strategy": strategy.name, "tile": strategy.tile * adapter.vae_scale,
        "overlap": strategy.overlap * adapter.vae_scale, "steps": steps,
        "scheduler": params.scheduler or "ddim",
        "mechanisms": {k: v for k, v in vars(mech).items()} if strategy.name == "memory" else {},
        "canvas": [ch, cw],
        "colour": colours.stats(), "warnings": list(colours.warnings),
    }
    return api.RenderResult(image=result, seam_risk=seam.numpy(), stats=stats)


def denoise_canvas(adapter: ModelAdapter, cond, reference: torch.Tensor, params: api.RenderParams,
                   mech: Mechanisms, active: Optional[torch.Tensor] = None, batch_size: int = 4,
                   risk: Optional[SeamRisk] = None, on_tile=None, should_cancel=None,
                   counters: Optional[Counters] = None) -> tuple[torch.Tensor, CanvasDenoiser]:
    """The sampling core on an already built canvas (benchmarks compare canvases directly)."""
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
        raise api.EngineError(str(e)) from e
    denoiser = CanvasDenoiser(adapter, cond, strategy, mech, reference, active=active,
                              batch_size=batch_size, risk=risk, on_tile=on_tile,
                              should_cancel=should_cancel, counters=counters)
    with torch.inference_mode(), denoiser:
        canvas = sample(denoiser, scheduler, reference, NoiseField(params.seed), params.steps,
                        params.strength)
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
