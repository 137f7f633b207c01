"""Attention memory: self-attention layers also attend to a pooled key/value bank from the
thumbnail pass, installed as diffusers attention processors (the model code is untouched).

A pooled token stands for `count` canvas tokens (pooling × thumbnail stride, squared), so its logit
gets + log(count) ("proportional attention"): under softmax it then weighs as much as the tokens
it summarises would have.
"""
from __future__ import annotations

import math
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn


class BankUse(Enum):
    """What self-attention does with the bank during the next model calls."""
    OFF = "off"          # plain attention
    RECORD = "record"    # fill it (the thumbnail pass)
    READ = "read"        # attend to it as well


class BankState:
    def __init__(self, pool: int):
        self.pool = pool
        self.mode = BankUse.OFF
        self.stride = 1
        self.window_hw = (1, 1)  # spatial size of the current model input (for token layers)
        self.banks: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}


def _tokens_hw(n: int, window_hw: tuple[int, int]) -> tuple[int, int]:
    f = math.sqrt(window_hw[0] * window_hw[1] / n)
    return round(window_hw[0] / f), round(window_hw[1] / f)


class BankAttnProcessor:
    """AttnProcessor2_0 with a key/value bank appended in self-attention."""

    def __init__(self, state: BankState, name: str, original):
        self.state, self.name, self.original = state, name, original

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        st = self.state
        if encoder_hidden_states is not None or attention_mask is not None or st.mode == BankUse.OFF \
                or (st.mode == BankUse.READ and self.name not in st.banks):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                                 *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        else:
            h, w = _tokens_hw(hidden_states.shape[1], st.window_hw)
        b = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        heads = attn.heads
        d = key.shape[-1] // heads
        mask = None
        if st.mode == BankUse.RECORD:
            p = st.pool
            pk = F.avg_pool2d(key.transpose(1, 2).reshape(b, -1, h, w), p, ceil_mode=True)
            pv = F.avg_pool2d(value.transpose(1, 2).reshape(b, -1, h, w), p, ceil_mode=True)
            count = (p * st.stride) ** 2
            st.banks[self.name] = (pk.flatten(2).transpose(1, 2), pv.flatten(2).transpose(1, 2),
                                   math.log(count))
        else:
            bk, bv, bias = st.banks[self.name]
            reps = b // bk.shape[0]
            bk = bk.repeat_interleave(reps, 0).to(key.dtype)
            bv = bv.repeat_interleave(reps, 0).to(value.dtype)
            n_own = key.shape[1]
            key = torch.cat([key, bk], 1)
            value = torch.cat([value, bv], 1)
            mask = torch.zeros(1, 1, 1, key.shape[1], dtype=query.dtype, device=query.device)
            mask[..., n_own:] = bias
        query = query.view(b, -1, heads, d).transpose(1, 2)
        key = key.view(b, -1, heads, d).transpose(1, 2)
        value = value.view(b, -1, heads, d).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, -1, heads * d).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, -1, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _is_self_attention(name: str, module: nn.Module) -> bool:
    return not name.endswith("attn2") and not getattr(module, "is_cross_attention", False)


class AttentionMemory:
    """Context manager installing bank processors on every self-attention layer."""

    def __init__(self, module: nn.Module, pool: int):
        from diffusers.models.attention_processor import Attention
        self.state = BankState(pool)
        self.layers = [(n, m) for n, m in module.named_modules()
                       if isinstance(m, Attention) and _is_self_attention(n, m)]
        self.saved: list = []

    def __enter__(self) -> "AttentionMemory":
        for name, m in self.layers:
            self.saved.append(m.processor)
            m.set_processor(BankAttnProcessor(self.state, name, m.processor))
        return self

    def __exit__(self, *exc) -> None:
        for (name, m), proc in zip(self.layers, self.saved):
            m.set_processor(proc)
        self.saved = []

    # -- what the next calls do with the bank ---------------------------------------------------
    def record(self, stride: int, window_hw: tuple[int, int]) -> None:
        """Fill the bank from a thumbnail pass over a canvas subsampled by `stride`."""
        self.state.mode, self.state.stride, self.state.window_hw = BankUse.RECORD, stride, window_hw

    def read(self, stride: int) -> None:
        """Attend to the bank as well (recorded at `stride`)."""
        self.state.mode, self.state.stride = BankUse.READ, stride

    def off(self) -> None:
        self.state.mode = BankUse.OFF

    def window(self, window_hw: tuple[int, int]) -> None:
        """The spatial size of the next call's input (token layers do not carry it)."""
        self.state.window_hw = window_hw
