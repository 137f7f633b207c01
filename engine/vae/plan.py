"""The VAE's encoder or decoder unrolled into a flat list of whole-image operations.

Each operation reads one stored whole-image activation (plus, for a residual, a second one) and
produces the next. Every GroupNorm sits at the *input* of an operation, so its statistics are the
moments of an activation that is already complete when the operation starts: the pass that
produced it accumulated them. This is the reading of diffusers' `Encoder`, `Decoder`,
`ResnetBlock2D`, `Upsample2D`, `Downsample2D` and `Attention` (the AttnProcessor2_0 path); any
module outside that vocabulary is refused rather than silently mis-run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class ConvOp:
    """dst = post(conv(pad(up(act(norm(pre(src))))))) [+ shortcut(res)] / scale."""

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

    def padding(self) -> tuple[int, int, int, int]:
        if self.pad is not None:
            return self.pad
        p = self.conv.padding[0]
        return (p, p, p, p)


@dataclass
class AttnOp:
    src: str
    dst: str
    attn: nn.Module


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

    def scale(self) -> float:
        """Output pixels per input pixel (8 for an SD decoder, 1/8 for its encoder)."""
        f = 1.0
        for op in self.ops:
            if isinstance(op, ConvOp):
                f = f * (2 if op.upsample else 1) / op.conv.stride[0]
        return f


class UnsupportedVAE(ValueError):
    """The model contains a layer this tiled VAE cannot reproduce exactly."""


def _check_conv(conv: nn.Module, what: str) -> nn.Conv2d:
    if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros" or conv.groups != 1:
        raise UnsupportedVAE(f"{what}: expected a plain zero-padded nn.Conv2d, got {conv!r}")
    if conv.dilation != (1, 1) or conv.kernel_size[0] != conv.kernel_size[1]:
        raise UnsupportedVAE(f"{what}: dilated or non-square convolution is not supported")
    return conv


def _check_norm(norm: nn.Module, what: str) -> nn.GroupNorm:
    if not isinstance(norm, nn.GroupNorm):
        raise UnsupportedVAE(f"{what}: expected nn.GroupNorm, got {type(norm).__name__} (SpatialNorm is not supported)")
    return norm


class _Namer:
    def __init__(self):
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"a{self.n}"


def _resnet(block: nn.Module, src: str, name: _Namer, ops: list, where: str) -> str:
    if type(block).__name__ != "ResnetBlock2D":
        raise UnsupportedVAE(f"{where}: unsupported block {type(block).__name__}")
    if block.upsample is not None or block.downsample is not None or block.time_emb_proj is not None:
        raise UnsupportedVAE(f"{where}: resampling or time-conditioned resnets are not supported")
    if block.time_embedding_norm not in ("default", "group"):  # identical without a time embedding
        raise UnsupportedVAE(f"{where}: time_embedding_norm={block.time_embedding_norm!r} is not supported")
    mid = name()
    ops.append(ConvOp(src, mid, _check_conv(block.conv1, where), _check_norm(block.norm1, where), block.nonlinearity))
    out = name()
    res_conv = _check_conv(block.conv_shortcut, where) if block.conv_shortcut is not None else None
    ops.append(
        ConvOp(
            mid, out, _check_conv(block.conv2, where), _check_norm(block.norm2, where), block.nonlinearity,
            res=src, res_conv=res_conv, scale=float(block.output_scale_factor),
        )
    )
    return out


def _attention(attn: nn.Module, src: str, name: _Namer, ops: list, where: str) -> str:
    if type(attn).__name__ != "Attention":
        raise UnsupportedVAE(f"{where}: unsupported attention {type(attn).__name__}")
    if attn.spatial_norm is not None or attn.group_norm is None or attn.norm_q is not None or attn.norm_k is not None:
        raise UnsupportedVAE(f"{where}: only GroupNorm-ed self-attention (the VAE mid-block) is supported")
    if not attn.residual_connection:
        raise UnsupportedVAE(f"{where}: attention without residual connection is not supported")
    out = name()
    ops.append(AttnOp(src, out, attn))
    return out


def _mid(mid: nn.Module, cur: str, name: _Namer, ops: list, where: str) -> str:
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
        raise UnsupportedVAE("post_quant_conv must be 1x1")
    cur = name()
    ops.append(ConvOp("in", cur, _check_conv(dec.conv_in, "decoder.conv_in"), pre=pre))
    cur = _mid(dec.mid_block, cur, name, ops, "decoder.mid_block")
    for b, block in enumerate(dec.up_blocks):
        if type(block).__name__ != "UpDecoderBlock2D":
            raise UnsupportedVAE(f"decoder.up_blocks.{b}: unsupported {type(block).__name__}")
        for r, resnet in enumerate(block.resnets):
            cur = _resnet(resnet, cur, name, ops, f"decoder.up_blocks.{b}.resnets.{r}")
        for u in block.upsamplers or []:
            if not (u.use_conv and u.interpolate and not u.use_conv_transpose and u.norm is None):
                raise UnsupportedVAE(f"decoder.up_blocks.{b}: only nearest ×2 + conv upsampling is supported")
            conv = u.conv if u.name == "conv" else u.Conv2d_0
            nxt = name()
            ops.append(ConvOp(cur, nxt, _check_conv(conv, "upsampler"), upsample=True))
            cur = nxt
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
            raise UnsupportedVAE(f"encoder.down_blocks.{b}: unsupported {type(block).__name__}")
        for r, resnet in enumerate(block.resnets):
            cur = _resnet(resnet, cur, name, ops, f"encoder.down_blocks.{b}.resnets.{r}")
        for d in block.downsamplers or []:
            if not d.use_conv or d.norm is not None:
                raise UnsupportedVAE(f"encoder.down_blocks.{b}: only strided-conv downsampling is supported")
            conv = _check_conv(d.conv, "downsampler")
            p = conv.padding[0]
            pad = (0, 1, 0, 1) if d.padding == 0 else (p, p, p, p)
            nxt = name()
            ops.append(ConvOp(cur, nxt, conv, pad=pad))
            cur = nxt
    cur = _mid(enc.mid_block, cur, name, ops, "encoder.mid_block")
    post = vae.quant_conv if getattr(vae, "quant_conv", None) is not None else None
    if post is not None and _check_conv(post, "quant_conv").kernel_size != (1, 1):
        raise UnsupportedVAE("quant_conv must be 1x1")
    ops.append(
        ConvOp(cur, "out", _check_conv(enc.conv_out, "encoder.conv_out"),
               _check_norm(enc.conv_norm_out, "encoder.conv_norm_out"), enc.conv_act, post=post)
    )
    out_ch = (post.out_channels if post is not None else enc.conv_out.out_channels)
    return Plan(ops, out_ch)
