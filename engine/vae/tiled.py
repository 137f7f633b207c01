"""Tiled encode and decode for diffusers `AutoencoderKL`, matching the full-frame VAE.

Inputs and outputs mean what `vae.decode` / `vae.encode` mean: `tiled_decode` takes what
`vae.decode` takes (latents already divided by `scaling_factor`, and with FLUX's `shift_factor`
already undone) and returns the decoded sample in the model's range (about [-1, 1], unclamped);
`tiled_encode` takes an image in [-1, 1] and returns the same `DiagonalGaussianDistribution` that
`vae.encode(x).latent_dist` would. SD 1.x/2.x, SDXL, FLUX.1/SD3 (16 latent channels, no quant
convs) and FLUX.2 (`AutoencoderKLFlux2`, 32 channels) layouts are read from the modules
themselves; `engine.vae.family` maps a pipeline's latents to these.

mode="exact": layer by layer over the whole image, every GroupNorm with exact whole-image
statistics, convolution halos exactly one kernel wide, the mid-block attention whole-image while
the latent has at most `attention.max_tokens` pixels (else local window + far-field cell bank).
Whole-image activations are stored while they fit `ram_budget` + `disk_budget`; past that a
schedule (`engine.layerwise.schedule`) stores only checkpoints and recomputes the rest tile by
tile, with a streaming pass per GroupNorm for its statistics: still exact, more convolution work.
mode="fast": one depth-first pass per tile with a receptive-field halo, statistics and far-field
attention taken from a thumbnail. See docs/VAE.md.

`tile` is the largest tile side, in pixels of whatever resolution an operation works at, so the
device memory a call needs depends on `tile` and the model, never on the image size.
"""
from __future__ import annotations

import errno
import logging
import shutil
import tempfile

import numpy as np
import torch
from torch import Tensor

from engine.layerwise.attention import AttentionPolicy
from engine.layerwise.plan import Plan, UnsupportedModel, decoder_plan, encoder_plan
from engine.layerwise.runner import Runner, Stored, storage_dtype
from engine.layerwise.values import STORAGE
from engine.layerwise.schedule import Schedule, choose
from engine.layerwise.store import ActivationStore, RamActivation
from engine.vae.fast import _Thumb, make_banks, run_tiles, thumbnail

__all__ = ["tiled_decode", "tiled_decode_into", "tiled_encode", "check_room", "scratch_schedule", "AttentionPolicy",
           "UnsupportedModel", "MODES"]
log = logging.getLogger(__name__)

MODES = ("exact", "fast")
DEFAULT_TILE = 512
DEFAULT_RAM_BUDGET = 2 << 30  # bytes of whole-image activations kept in RAM before spilling to disk
FAST_THUMB = 1024  # longest side, in input pixels for encode / output pixels for decode


def _model_dtype(vae) -> tuple[torch.device, torch.dtype]:
    p = next(vae.parameters())
    return p.device, p.dtype


def _plan(vae, decode: bool) -> Plan:
    """The decoder's or encoder's plan; a model it cannot reproduce is named with its class."""
    try:
        return decoder_plan(vae) if decode else encoder_plan(vae)
    except UnsupportedModel as exc:
        raise UnsupportedModel(f"{type(vae).__name__}: {exc}") from exc


def _check(mode: str, tile: int, x: Tensor, channels: int, what: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(tile, int) or tile < 8:
        raise ValueError(f"tile must be an integer >= 8, got {tile!r}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{what} must be (batch, {channels}, height, width), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < 1 or not torch.is_floating_point(x):
        raise ValueError(f"{what} must be a non-empty floating-point tensor")


def _source(x: Tensor) -> Stored:
    arr = x.detach().float().cpu().permute(1, 2, 0).numpy()
    return Stored(RamActivation(*arr.shape, arr.dtype, out=np.ascontiguousarray(arr)))


def _storage(vae, storage: str | None) -> np.dtype:
    """The dtype whole-image activations are stored in: the model's (bfloat16 kept as bfloat16),
    or `storage` ('float32', 'float16', 'bfloat16'), e.g. bfloat16 for a float32 model whose
    float16 activations would overflow (SDXL's)."""
    if storage is None:
        dtype = _model_dtype(vae)[1]
        return STORAGE["bfloat16"] if dtype == torch.bfloat16 else storage_dtype(dtype)
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {tuple(STORAGE)}, got {storage!r}")
    return STORAGE[storage]


def _schedule(vae, plan: Plan, height: int, width: int, tile: int, store: str | None, ram_budget: int,
              disk_budget: int | None, max_work: float | None, storage: str | None = None) -> Schedule:
    """The store-everything schedule when its activations fit RAM + temporary disk, else the
    least convolution work that fits; OSError (ENOSPC) when none fits or the least work exceeds
    `max_work` (a multiple of one full-frame run: the time budget)."""
    itemsize = _storage(vae, storage).itemsize
    disk = shutil.disk_usage(store or tempfile.gettempdir()).free if disk_budget is None else disk_budget
    try:
        schedule = choose(plan, height, width, itemsize, tile, ram_budget + disk)
    except ValueError as exc:
        raise OSError(errno.ENOSPC, f"{exc} (RAM budget {ram_budget / 2**30:.2f} GiB + temporary disk "
                      f"{disk / 2**30:.2f} GiB)") from exc
    if max_work is not None and schedule.work > max_work:
        raise OSError(errno.ENOSPC, f"within {(ram_budget + disk) / 2**30:.2f} GiB of scratch the least "
                      f"recomputation costs {schedule.work:.2f}x a full-frame run, over max_work={max_work}")
    return schedule


def scratch_schedule(vae, height: int, width: int, *, decode: bool = True, tile: int = DEFAULT_TILE,
                     store: str | None = None, ram_budget: int = DEFAULT_RAM_BUDGET,
                     disk_budget: int | None = None, max_work: float | None = None,
                     storage: str | None = None) -> Schedule:
    """The schedule exact mode would run for a decode of latents of height × width (or an encode of
    an image of that size): what it stores, its scratch bytes and its convolution work."""
    plan = _plan(vae, decode)
    return _schedule(vae, plan, height, width, tile, store, ram_budget, disk_budget, max_work, storage)


def _exact(vae, plan: Plan, x: Tensor, out: np.ndarray | None, tile, store, ram_budget, attention,
           disk_budget: int | None = None, max_work: float | None = None, storage: str | None = None) -> np.ndarray:
    device, dtype = _model_dtype(vae)
    schedule = _schedule(vae, plan, x.shape[2], x.shape[3], tile, store, ram_budget, disk_budget, max_work, storage)
    log.info("exact tiled VAE, %dx%d input: %s", x.shape[3], x.shape[2], schedule.describe())
    runner = Runner(device, dtype, ActivationStore(ram_budget, store), tile, attention,
                    storage=_storage(vae, storage))
    dst = None
    if out is not None:
        dst = RamActivation(*out.shape, out.dtype, out=out)
    with torch.inference_mode():
        result = runner.run(plan, _source(x[0]), dst, schedule)
    return result.act.array


def _fast(vae, plan: Plan, x: Tensor, out: np.ndarray | None, tile, store, ram_budget, attention, decode: bool,
          thumb_px: int) -> np.ndarray:
    device, dtype = _model_dtype(vae)
    f = plan.scale()
    longest = thumb_px / f if decode else thumb_px
    small, _ = thumbnail(x, max(1, int(longest)))
    runner = Runner(device, dtype, ActivationStore(ram_budget, store), tile, attention, record_attention=True)
    with torch.inference_mode():
        runner.run(plan, _source(small[0]))
        lat_h, lat_w = (x.shape[2], x.shape[3]) if decode else (int(x.shape[2] * f), int(x.shape[3] * f))
        thumb = _Thumb(runner.norms, make_banks(runner.attn_hidden, lat_h, lat_w))
        oh, ow = (int(x.shape[2] * f), int(x.shape[3] * f))
        if out is None:
            out = np.empty((oh, ow, plan.out_channels), np.float32)
        elif out.shape != (oh, ow, plan.out_channels):
            raise ValueError(f"output array has shape {out.shape}, expected {(oh, ow, plan.out_channels)}")
        if decode:
            pre = vae.post_quant_conv

            def net(z):
                z = z.to(device, dtype)
                return vae.decoder(pre(z) if pre is not None else z)

            run_tiles(net, plan, x, thumb, out, max(1, int(tile // f)), 1, 1.0)
        else:
            post = vae.quant_conv

            def net(img):
                h = vae.encoder(img.to(device, dtype))
                return post(h) if post is not None else h

            align = int(round(1 / f))
            run_tiles(net, plan, x, thumb, out, tile, align, f)
    return out


def _to_tensor(arr: np.ndarray, like: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].to(like.device, dtype)


def check_room(vae, height: int, width: int, *, store: str | None = None, ram_budget: int = DEFAULT_RAM_BUDGET,
               disk_budget: int | None = None, tile: int = DEFAULT_TILE, max_work: float | None = None) -> None:
    """Raises OSError (ENOSPC) when no schedule lets an exact encode of a height × width image, or
    the decode of its latents, keep its activations within `ram_budget` and the temporary disk
    (`disk_budget`, or the free disk of `store`) within `max_work`, so that a render can refuse a
    frame before hours of denoising rather than at the decode."""
    decoder = _plan(vae, True)
    scale = int(decoder.scale())
    _schedule(vae, _plan(vae, False), height, width, tile, store, ram_budget, disk_budget, max_work)
    _schedule(vae, decoder, -(-height // scale), -(-width // scale), tile, store, ram_budget, disk_budget, max_work)


def tiled_decode(
    vae, latents: Tensor, *, tile: int = DEFAULT_TILE, mode: str = "exact", store: str | None = None,
    ram_budget: int = DEFAULT_RAM_BUDGET, attention: AttentionPolicy = AttentionPolicy(), thumb: int = FAST_THUMB,
    disk_budget: int | None = None, max_work: float | None = None, storage: str | None = None,
) -> Tensor:
    """`vae.decode(latents).sample`, computed in tiles. Returns (B, C, 8h, 8w) on latents' device
    in the model's dtype. `store` is the directory for activations that exceed `ram_budget` bytes;
    `thumb` is fast mode's thumbnail size (longest side, output pixels). `disk_budget`: bytes of
    temporary disk exact mode may use (None: the free space of `store`); past RAM + disk it
    recomputes instead of storing, up to `max_work` times a full-frame run's convolutions.
    `storage`: the dtype stored activations are kept in (None: the model's)."""
    plan = _plan(vae, True)
    _check(mode, tile, latents, vae.decoder.conv_in.in_channels, "latents")
    return _per_sample(vae, plan, latents, mode, tile, store, ram_budget, attention, thumb, decode=True,
                       disk_budget=disk_budget, max_work=max_work, storage=storage)


def _per_sample(vae, plan, x: Tensor, mode: str, tile: int, store, ram_budget: int,
                attention: AttentionPolicy, thumb: int, *, decode: bool, **budgets) -> Tensor:
    """Run the plan on each sample of a batch in turn (memory is planned for one sample)."""
    _, dtype = _model_dtype(vae)
    outs = []
    for b in range(x.shape[0]):
        one = x[b : b + 1]
        arr = _exact(vae, plan, one, None, tile, store, ram_budget, attention, **budgets) if mode == "exact" else \
            _fast(vae, plan, one, None, tile, store, ram_budget, attention, decode=decode, thumb_px=thumb)
        outs.append(_to_tensor(arr, x, dtype))
    return torch.cat(outs)


def tiled_decode_into(
    vae, latents: Tensor, out: np.ndarray, *, tile: int = DEFAULT_TILE, mode: str = "exact",
    store: str | None = None, ram_budget: int = DEFAULT_RAM_BUDGET, attention: AttentionPolicy = AttentionPolicy(),
    thumb: int = FAST_THUMB, disk_budget: int | None = None, max_work: float | None = None,
    storage: str | None = None,
) -> np.ndarray:
    """Decode one latent (1, C, h, w) straight into `out`, a writable (8h, 8w, C_out) float array
    (a numpy memmap is fine), so the full-resolution image exists only once, in the caller's array."""
    plan = _plan(vae, True)
    _check(mode, tile, latents, vae.decoder.conv_in.in_channels, "latents")
    if latents.shape[0] != 1:
        raise ValueError("tiled_decode_into decodes one latent at a time")
    if out.dtype.kind != "f" or not out.flags.writeable:
        raise ValueError("out must be a writable floating-point array")
    f = int(plan.scale())
    expected = (latents.shape[2] * f, latents.shape[3] * f, plan.out_channels)
    if out.shape != expected:
        raise ValueError(f"out has shape {out.shape}, expected {expected}")
    if mode == "exact":
        _exact(vae, plan, latents, out, tile, store, ram_budget, attention, disk_budget, max_work, storage)
    else:
        _fast(vae, plan, latents, out, tile, store, ram_budget, attention, decode=True, thumb_px=thumb)
    return out


def tiled_encode(
    vae, image: Tensor, *, tile: int = DEFAULT_TILE, mode: str = "exact", store: str | None = None,
    ram_budget: int = DEFAULT_RAM_BUDGET, attention: AttentionPolicy = AttentionPolicy(), thumb: int = FAST_THUMB,
    disk_budget: int | None = None, max_work: float | None = None, storage: str | None = None,
):
    """`vae.encode(image).latent_dist`, computed in tiles: a DiagonalGaussianDistribution.
    `thumb` is fast mode's thumbnail size (longest side, input pixels)."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    plan = _plan(vae, False)
    _check(mode, tile, image, vae.encoder.conv_in.in_channels, "image")
    return DiagonalGaussianDistribution(
        _per_sample(vae, plan, image, mode, tile, store, ram_budget, attention, thumb, decode=False,
                    disk_budget=disk_budget, max_work=max_work, storage=storage))
