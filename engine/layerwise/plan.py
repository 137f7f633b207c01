"""A network unrolled into a flat list of whole-image operations: the VAE's encoder or decoder,
or a diffusers `UNet2DModel` or `UNet2DConditionModel` (SD 1.x/2.x, SDXL).

Each operation reads one stored whole-image activation (plus a skip connection concatenated to
it, and, for a residual, another one) and produces the next. Every GroupNorm sits at the *input*
of an operation, so its statistics are the moments of an activation that is already complete
when the operation starts: the pass that produced it accumulated them.

This is the reading of diffusers' `Encoder`, `Decoder`, `ResnetBlock2D`, `Upsample2D`,
`Downsample2D` and `Attention` (the AttnProcessor2_0 path); of `UNet2DModel` with its
`DownBlock2D`, `AttnDownBlock2D`, `UNetMidBlock2D`, `UpBlock2D` and `AttnUpBlock2D`; and of
`UNet2DConditionModel` with its cross-attention blocks, whose `Transformer2DModel`s become
per-token operations (projections, cross-attention to the prompt, feed-forward) around one
whole-image self-attention per transformer block. Any module outside that vocabulary is refused
rather than silently mis-run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ConvOp:
    """dst = (post(conv(pad(up(act(norm(pre(src ⊕ cat))))))) + temb) [+ shortcut(res ⊕ res_cat)] / scale.

    ⊕ concatenates channels (a UNet's skip connection); temb = temb_proj(temb_act(emb)), one
    value per channel for the whole image (a time-conditioned resnet's embedding).
    """

    src: str
    dst: str
    conv: nn.Conv2d
    norm: nn.GroupNorm | None = None
    act: nn.Module | None = None
    pre: nn.Conv2d | None = None  # pointwise 1x1 before everything (post_quant_conv)
    post: nn.Conv2d | None = None  # pointwise 1x1 after the conv (quant_conv)
    upsample: bool = False  # nearest ×2 before the conv
    pad: tuple[int, int, int, int] | None = None  # top, bottom, left, right zeros; None = conv's own
    res: str | None = None
    res_conv: nn.Conv2d | None = None
    scale: float = 1.0
    cat: str | None = None
    res_cat: str | None = None
    temb_proj: nn.Linear | None = None
    temb_act: nn.Module | None = None

    def inputs(self) -> list[str]:
        return [n for n in (self.src, self.cat, self.res, self.res_cat) if n is not None]

    def padding(self) -> tuple[int, int, int, int]:
        if self.pad is not None:
            return self.pad
        p = self.conv.padding[0]
        return (p, p, p, p)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(height, width, channels) of the output for an input of height × width."""
        f, k, s = (2 if self.upsample else 1), self.conv.kernel_size[0], self.conv.stride[0]
        pt, pb, pl, pr = self.padding()
        return (f * height + pt + pb - k) // s + 1, (f * width + pl + pr - k) // s + 1, \
            (self.post or self.conv).out_channels

    @property
    def subpixel(self) -> bool:
        """Nearest ×2 then a 3×3 convolution padded by 1: each output pixel's phase (row and
        column parity) sees only 2×2 input pixels, so it runs as four 2×2 convolutions at the
        input's resolution (4/9 of the work, the same sums with the taps that land on one
        input pixel added first)."""
        return self.upsample and self.conv.kernel_size[0] == 3 and self.conv.stride[0] == 1 \
            and self.padding() == (1, 1, 1, 1)

    def input_span(self, span: np.ndarray, size: int, axis: int) -> np.ndarray:
        """The input rows (axis 0) or columns (axis 1) that output intervals `span` (an (n, 2)
        array of [begin, end)) read, clipped to the input's `size`: the kernel's window through
        the ×2 upsample, the zero padding left out. A sub-pixel op computes whole input pixels'
        worth of output (both phases), so it reads one input pixel around those."""
        if self.subpixel:
            return np.stack([np.maximum(span[:, 0] // 2 - 1, 0), np.minimum(-(-span[:, 1] // 2) + 1, size)], axis=1)
        f, k, s = (2 if self.upsample else 1), self.conv.kernel_size[0], self.conv.stride[0]
        p = self.padding()[0 if axis == 0 else 2]
        lo = np.maximum(span[:, 0] * s - p, 0)
        hi = np.minimum((span[:, 1] - 1) * s + k - p, f * size)
        return np.stack([lo // f, -(-hi // f)], axis=1)


@dataclass
class AttnOp:
    """dst = src + attention(norm(src)) over the whole image: `attn.group_norm` (a mid-block's), or
    `token_norm`, a per-token LayerNorm (a transformer block's)."""

    src: str
    dst: str
    attn: nn.Module
    token_norm: nn.LayerNorm | None = None

    def inputs(self) -> list[str]:
        return [self.src]


@dataclass
class TokenOp:
    """dst = fn(norm(src) as tokens (1, n, C)[, context]) [+ res]: a per-pixel function, so it
    runs tile by tile with no halo (a transformer's projections, cross-attention to the prompt's
    `Runner.context`, feed-forward)."""

    src: str
    dst: str
    fn: Callable[..., Tensor]
    out_channels: int
    norm: nn.GroupNorm | None = None
    res: str | None = None
    context: bool = False

    def inputs(self) -> list[str]:
        return [n for n in (self.src, self.res) if n is not None]


@dataclass
class Plan:
    ops: list = field(default_factory=list)
    out_channels: int = 0

    def reach(self, stop: int | None = None) -> float:
        """Receptive-field radius of the conv stack (of its first `stop` operations), in input pixels."""
        unit, total = 1.0, 0.0  # unit = size of the current resolution's pixel in input pixels
        for op in self.ops[:stop]:
            if isinstance(op, ConvOp):
                if op.upsample:
                    unit /= 2
                k, s = op.conv.kernel_size[0], op.conv.stride[0]
                pad = op.padding()
                total += max(max(pad), k - 1 - min(pad)) * unit
                unit *= s
        return total

    def last_uses(self) -> dict[str, int]:
        """The index of the last operation that reads each activation, when it can be released."""
        return {n: i for i, op in enumerate(self.ops) for n in op.inputs()}

    def peak_bytes(self, height: int, width: int, itemsize: int) -> int:
        """Most bytes of stored activations alive at once when `Runner.run` evaluates this plan on
        an image of height × width (the input and output arrays, which the caller owns, excluded)."""
        shapes = self.shapes(height, width)
        last_use = self.last_uses()
        live, peak = {}, 0
        for i, op in enumerate(self.ops):
            h, w, c = shapes[op.dst]
            if op.dst != "out":
                live[op.dst] = h * w * c * itemsize
            peak = max(peak, sum(live.values()))
            for name in set(op.inputs()) - {"in"}:
                if last_use[name] == i:
                    live.pop(name, None)
        return peak

    def shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """(height, width, channels) of every activation for an input of height × width ('in'
        with 0 channels: the input is the caller's)."""
        out = {"in": (height, width, 0)}
        for op in self.ops:
            h, w, c = out[op.src]
            if isinstance(op, ConvOp):
                h, w, c = op.output_shape(h, w)
            elif isinstance(op, TokenOp):
                c = op.out_channels
            out[op.dst] = (h, w, c)
        return out

    def scale(self) -> float:
        """Output pixels per input pixel (8 for an SD decoder, 1/8 for its encoder)."""
        f = 1.0
        for op in self.ops:
            if isinstance(op, ConvOp):
                f = f * (2 if op.upsample else 1) / op.conv.stride[0]
        return f


class UnsupportedModel(ValueError):
    """The model contains a layer that layerwise evaluation cannot reproduce exactly."""


def _check_conv(conv: nn.Module, what: str) -> nn.Conv2d:
    if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros" or conv.groups != 1:
        raise UnsupportedModel(f"{what}: expected a plain zero-padded nn.Conv2d, got {conv!r}")
    if conv.dilation != (1, 1) or conv.kernel_size[0] != conv.kernel_size[1]:
        raise UnsupportedModel(f"{what}: dilated or non-square convolution is not supported")
    return conv


def _check_norm(norm: nn.Module, what: str) -> nn.GroupNorm:
    if not isinstance(norm, nn.GroupNorm):
        raise UnsupportedModel(f"{what}: expected nn.GroupNorm, got {type(norm).__name__} (SpatialNorm is not supported)")
    return norm


class _Namer:
    def __init__(self):
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"a{self.n}"


def _resnet(block: nn.Module, src: str, name: _Namer, ops: list, where: str, cat: str | None = None) -> str:
    """`cat`: a skip connection concatenated to `src` before the block (a UNet's up path)."""
    if type(block).__name__ != "ResnetBlock2D":
        raise UnsupportedModel(f"{where}: unsupported block {type(block).__name__}")
    if block.upsample is not None or block.downsample is not None:
        raise UnsupportedModel(f"{where}: resampling resnets are not supported")
    if block.time_embedding_norm not in ("default", "group") or (
            block.time_emb_proj is not None and block.time_embedding_norm != "default"):
        raise UnsupportedModel(f"{where}: time_embedding_norm={block.time_embedding_norm!r} is not supported")
    temb_act = None
    if block.time_emb_proj is not None:
        temb_act = nn.Identity() if block.skip_time_act else block.nonlinearity
    mid = name()
    ops.append(ConvOp(src, mid, _check_conv(block.conv1, where), _check_norm(block.norm1, where), block.nonlinearity,
                      cat=cat, temb_proj=block.time_emb_proj, temb_act=temb_act))
    out = name()
    res_conv = _check_conv(block.conv_shortcut, where) if block.conv_shortcut is not None else None
    ops.append(
        ConvOp(
            mid, out, _check_conv(block.conv2, where), _check_norm(block.norm2, where), block.nonlinearity,
            res=src, res_conv=res_conv, scale=float(block.output_scale_factor), res_cat=cat,
        )
    )
    return out


def _attention(attn: nn.Module, src: str, name: _Namer, ops: list, where: str) -> str:
    if type(attn).__name__ == "Transformer2DModel":
        return _transformer(attn, src, name, ops, where)
    if type(attn).__name__ != "Attention":
        raise UnsupportedModel(f"{where}: unsupported attention {type(attn).__name__}")
    if attn.spatial_norm is not None or attn.group_norm is None or attn.norm_q is not None or attn.norm_k is not None:
        raise UnsupportedModel(f"{where}: only GroupNorm-ed self-attention (a mid-block's) is supported")
    if attn.is_cross_attention:
        raise UnsupportedModel(f"{where}: cross-attention is not supported")
    if not attn.residual_connection:
        raise UnsupportedModel(f"{where}: attention without residual connection is not supported")
    out = name()
    ops.append(AttnOp(src, out, attn))
    return out


def _per_token(m: nn.Module, what: str) -> Callable[[Tensor], Tensor]:
    """A transformer's proj_in/proj_out as a function of tokens: Linear, or a 1×1 Conv2d."""
    if isinstance(m, nn.Linear):
        return m
    if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1:
        weight = m.weight[:, :, 0, 0]
        return lambda t: F.linear(t, weight, m.bias)
    raise UnsupportedModel(f"{what}: expected Linear or 1x1 Conv2d, got {m!r}")


def _cross_and_feed_forward(block: nn.Module, hidden: Tensor, context: Tensor) -> Tensor:
    """The per-token rest of a BasicTransformerBlock (norm_type 'layer_norm') after self-attention."""
    if block.attn2 is not None:
        hidden = block.attn2(block.norm2(hidden), encoder_hidden_states=context) + hidden
    return block.ff(block.norm3(hidden)) + hidden


def _transformer(tr: nn.Module, src: str, name: _Namer, ops: list, where: str) -> str:
    """A continuous-input Transformer2DModel: GroupNorm + proj_in, per block one whole-image
    self-attention and one per-token op (cross-attention, feed-forward), proj_out + residual."""
    if not getattr(tr, "is_input_continuous", False) or tr.config.norm_type != "layer_norm":
        raise UnsupportedModel(f"{where}: only continuous-input, layer-norm transformers are supported")
    inner = tr.proj_in.out_features if isinstance(tr.proj_in, nn.Linear) else tr.proj_in.out_channels
    cur = name()
    ops.append(TokenOp(src, cur, _per_token(tr.proj_in, f"{where}.proj_in"), inner,
                       norm=_check_norm(tr.norm, f"{where}.norm")))
    for i, block in enumerate(tr.transformer_blocks):
        w = f"{where}.transformer_blocks.{i}"
        if type(block).__name__ != "BasicTransformerBlock" or block.norm_type != "layer_norm" \
                or block.pos_embed is not None or block.only_cross_attention \
                or getattr(block, "fuser", None) is not None:
            raise UnsupportedModel(f"{w}: unsupported transformer block")
        attn = block.attn1
        if attn.is_cross_attention or attn.norm_q is not None or attn.residual_connection \
                or attn.rescale_output_factor != 1.0:
            raise UnsupportedModel(f"{w}.attn1: expected plain self-attention")
        a, b = name(), name()
        ops.append(AttnOp(cur, a, attn, token_norm=block.norm1))
        ops.append(TokenOp(a, b, lambda t, c, block=block: _cross_and_feed_forward(block, t, c),
                           inner, context=True))
        cur = b
    out = name()
    channels = tr.proj_out.out_features if isinstance(tr.proj_out, nn.Linear) else tr.proj_out.out_channels
    ops.append(TokenOp(cur, out, _per_token(tr.proj_out, f"{where}.proj_out"), channels, res=src))
    return out


def _upsample(u: nn.Module, src: str, name: _Namer, ops: list, where: str) -> str:
    if type(u).__name__ != "Upsample2D" or not (u.use_conv and u.interpolate and not u.use_conv_transpose
                                                 and u.norm is None):
        raise UnsupportedModel(f"{where}: only nearest ×2 + conv upsampling is supported")
    conv = u.conv if u.name == "conv" else u.Conv2d_0
    out = name()
    ops.append(ConvOp(src, out, _check_conv(conv, f"{where}.upsampler"), upsample=True))
    return out


def _downsample(d: nn.Module, src: str, name: _Namer, ops: list, where: str) -> str:
    if type(d).__name__ != "Downsample2D" or not d.use_conv or d.norm is not None:
        raise UnsupportedModel(f"{where}: only strided-conv downsampling is supported")
    conv = _check_conv(d.conv, f"{where}.downsampler")
    p = conv.padding[0]
    pad = (0, 1, 0, 1) if d.padding == 0 else (p, p, p, p)
    out = name()
    ops.append(ConvOp(src, out, conv, pad=pad))
    return out


def _mid(mid: nn.Module, cur: str, name: _Namer, ops: list, where: str) -> str:
    if type(mid).__name__ not in ("UNetMidBlock2D", "UNetMidBlock2DCrossAttn"):
        raise UnsupportedModel(f"{where}: unsupported {type(mid).__name__}")
    cur = _resnet(mid.resnets[0], cur, name, ops, f"{where}.resnets.0")
    for i, (attn, resnet) in enumerate(zip(mid.attentions, mid.resnets[1:])):
        if attn is not None:
            cur = _attention(attn, cur, name, ops, f"{where}.attentions.{i}")
        cur = _resnet(resnet, cur, name, ops, f"{where}.resnets.{i + 1}")
    return cur


def decoder_plan(vae: nn.Module) -> Plan:
    """Operations of `vae.decode(z)`: post_quant_conv, decoder; input name 'in', output 'out'."""
    dec = vae.decoder
    name, ops = _Namer(), []
    pre = vae.post_quant_conv if getattr(vae, "post_quant_conv", None) is not None else None
    if pre is not None and _check_conv(pre, "post_quant_conv").kernel_size != (1, 1):
        raise UnsupportedModel("post_quant_conv must be 1x1")
    cur = name()
    ops.append(ConvOp("in", cur, _check_conv(dec.conv_in, "decoder.conv_in"), pre=pre))
    cur = _mid(dec.mid_block, cur, name, ops, "decoder.mid_block")
    for b, block in enumerate(dec.up_blocks):
        if type(block).__name__ != "UpDecoderBlock2D":
            raise UnsupportedModel(f"decoder.up_blocks.{b}: unsupported {type(block).__name__}")
        for r, resnet in enumerate(block.resnets):
            cur = _resnet(resnet, cur, name, ops, f"decoder.up_blocks.{b}.resnets.{r}")
        for u in block.upsamplers or []:
            cur = _upsample(u, cur, name, ops, f"decoder.up_blocks.{b}")
    ops.append(
        ConvOp(cur, "out", _check_conv(dec.conv_out, "decoder.conv_out"),
               _check_norm(dec.conv_norm_out, "decoder.conv_norm_out"), dec.conv_act)
    )
    return Plan(ops, dec.conv_out.out_channels)


def encoder_plan(vae: nn.Module) -> Plan:
    """Operations of `vae.encode(x)` up to the moments: encoder, quant_conv."""
    enc = vae.encoder
    name, ops = _Namer(), []
    cur = name()
    ops.append(ConvOp("in", cur, _check_conv(enc.conv_in, "encoder.conv_in")))
    for b, block in enumerate(enc.down_blocks):
        if type(block).__name__ != "DownEncoderBlock2D":
            raise UnsupportedModel(f"encoder.down_blocks.{b}: unsupported {type(block).__name__}")
        for r, resnet in enumerate(block.resnets):
            cur = _resnet(resnet, cur, name, ops, f"encoder.down_blocks.{b}.resnets.{r}")
        for d in block.downsamplers or []:
            cur = _downsample(d, cur, name, ops, f"encoder.down_blocks.{b}")
    cur = _mid(enc.mid_block, cur, name, ops, "encoder.mid_block")
    post = vae.quant_conv if getattr(vae, "quant_conv", None) is not None else None
    if post is not None and _check_conv(post, "quant_conv").kernel_size != (1, 1):
        raise UnsupportedModel("quant_conv must be 1x1")
    ops.append(
        ConvOp(cur, "out", _check_conv(enc.conv_out, "encoder.conv_out"),
               _check_norm(enc.conv_norm_out, "encoder.conv_norm_out"), enc.conv_act, post=post)
    )
    out_ch = (post.out_channels if post is not None else enc.conv_out.out_channels)
    return Plan(ops, out_ch)


DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D", "CrossAttnDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D", "CrossAttnUpBlock2D")


def _check_unet(unet: nn.Module) -> None:
    cfg = unet.config
    kind = type(unet).__name__
    if kind not in ("UNet2DModel", "UNet2DConditionModel"):
        raise UnsupportedModel(f"layerwise evaluation needs a UNet2DModel or UNet2DConditionModel, got {kind}")
    if cfg.center_input_sample or getattr(unet, "class_embedding", None) is not None:
        raise UnsupportedModel(f"{kind}: centred input and class embeddings are not supported")
    if kind == "UNet2DModel" and cfg.time_embedding_type != "positional":
        raise UnsupportedModel("UNet2DModel: Fourier time embeddings are not supported")
    if kind == "UNet2DConditionModel":
        if cfg.time_embedding_type != "positional" or unet.encoder_hid_proj is not None \
                or cfg.addition_embed_type not in (None, "text_time") \
                or getattr(unet, "position_net", None) is not None:
            raise UnsupportedModel("UNet2DConditionModel: only SD 1.x/2.x and SDXL conditioning is supported")


def unet_plan(unet: nn.Module) -> Plan:
    """Operations of a diffusers `UNet2DModel`'s or `UNet2DConditionModel`'s forward after the time
    embedding; input 'in' (the model's input sample), output 'out'. The resnets' `temb_proj` need
    the embedding of the call's timestep (`Runner.emb`), cross-attention the prompt
    (`Runner.context`); skip connections are ordinary stored activations that stay alive until the
    up path concatenates them."""
    _check_unet(unet)
    name, ops = _Namer(), []
    cur = name()
    ops.append(ConvOp("in", cur, _check_conv(unet.conv_in, "conv_in")))
    skips = [cur]
    for b, block in enumerate(unet.down_blocks):
        kind, where = type(block).__name__, f"down_blocks.{b}"
        if kind not in DOWN_BLOCKS or hasattr(block, "skip_conv"):
            raise UnsupportedModel(f"{where}: unsupported {kind}")
        attns = getattr(block, "attentions", None) or [None] * len(block.resnets)
        for r, (resnet, attn) in enumerate(zip(block.resnets, attns)):
            cur = _resnet(resnet, cur, name, ops, f"{where}.resnets.{r}")
            if attn is not None:
                cur = _attention(attn, cur, name, ops, f"{where}.attentions.{r}")
            skips.append(cur)
        for d in block.downsamplers or []:
            cur = _downsample(d, cur, name, ops, where)
            skips.append(cur)
    if unet.mid_block is not None:
        cur = _mid(unet.mid_block, cur, name, ops, "mid_block")
    for b, block in enumerate(unet.up_blocks):
        kind, where = type(block).__name__, f"up_blocks.{b}"
        if kind not in UP_BLOCKS or hasattr(block, "skip_conv"):
            raise UnsupportedModel(f"{where}: unsupported {kind}")
        if any(getattr(block, k, None) for k in ("s1", "s2", "b1", "b2")):
            raise UnsupportedModel(f"{where}: FreeU is not supported")
        if getattr(block, "upsample_type", "conv") != "conv":
            raise UnsupportedModel(f"{where}: upsample_type={block.upsample_type!r} is not supported")
        attns = getattr(block, "attentions", None) or [None] * len(block.resnets)
        for r, (resnet, attn) in enumerate(zip(block.resnets, attns)):
            cur = _resnet(resnet, cur, name, ops, f"{where}.resnets.{r}", cat=skips.pop())
            if attn is not None:
                cur = _attention(attn, cur, name, ops, f"{where}.attentions.{r}")
        for u in block.upsamplers or []:
            cur = _upsample(u, cur, name, ops, where)
    if unet.conv_norm_out is None:
        raise UnsupportedModel("conv_norm_out: a UNet without output norm is not supported")
    ops.append(ConvOp(cur, "out", _check_conv(unet.conv_out, "conv_out"),
                      _check_norm(unet.conv_norm_out, "conv_norm_out"), unet.conv_act))
    return Plan(ops, unet.conv_out.out_channels)
