"""Attention: F.scaled_dot_product_attention, F.multi_head_attention_forward,
nn.MultiheadAttention, nn.TransformerEncoderLayer and nn.TransformerEncoder (torch.nn's
semantics, argument names and state_dict keys, so torch weights load).

Everything is composed of differentiable Tensor ops (linear, matmul, softmax, masked
fill, dropout, layer norm), so gradients are autograd's."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn import init
from pyvision_engine.nn._f_common import (
    AssertionValueError, RuntimeTypeError, RuntimeValueError, check_factory_kwargs, float_input,
)
from pyvision_engine.nn.container import ModuleList
from pyvision_engine.nn.dropout import Dropout
from pyvision_engine.nn.linear import Linear
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.normalization import LayerNorm
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward",
           "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder"]

_NEG_INF = np.float32(-np.inf)


def _safe_softmax(scores: Tensor) -> Tensor:
    """softmax over the last dim, with rows that are all -inf giving zeros (and zero
    gradients) instead of NaN, as torch's SDPA (_safe_softmax) does."""
    dead = np.all(scores.detach().numpy() == _NEG_INF, axis=-1, keepdims=True)
    if not dead.any():
        return F.softmax(scores, dim=-1)
    # fill the dead rows before the softmax too, so its backward sees no NaN
    return F.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)


def _broadcast_shape(a: Tuple[int, ...], b: Tuple[int, ...], what: str) -> Tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise RuntimeValueError(f"scaled_dot_product_attention: {what} {a} and {b} do not "
                                "broadcast") from None


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, *,
                                 scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """torch.nn.functional.scaled_dot_product_attention: ``softmax(q k^T * scale + mask)
    v`` for query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); the
    leading dims broadcast. scale defaults to 1/sqrt(E). attn_mask broadcasts to (..., L,
    S): bool (True = takes part) or float (added to the scores). is_causal masks as
    ``tril(ones(L, S))`` (top-left aligned) and excludes attn_mask. enable_gqa repeats
    each key/value head (dim -3) for query_heads / kv_heads query heads. Rows with no
    position left give zeros (as torch). dropout_p > 0 drops attention weights always
    (this function has no training flag, as torch)."""
    op = "scaled_dot_product_attention"
    q, k, v = (float_input(t, op) for t in (query, key, value))
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise RuntimeValueError(f"{op}: expected {name} of shape (..., seq, dim), got "
                                    f"shape {t.shape}")
    if k.shape[-1] != q.shape[-1]:
        raise RuntimeValueError(f"{op}: key's last dim must equal query's ({q.shape[-1]}), "
                                f"got key shape {k.shape} for query shape {q.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise RuntimeValueError(f"{op}: value's sequence length must equal key's "
                                f"({k.shape[-2]}), got value shape {v.shape} for key shape "
                                f"{k.shape}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    if enable_gqa and q.ndim >= 3 and k.ndim >= 3:
        hq, hk, hv = q.shape[-3], k.shape[-3], v.shape[-3]
        if hk != hv or hk == 0 or hq % hk:
            raise RuntimeValueError(
                f"{op}: Number of heads in key and value must divide the number of heads in "
                f"query (enable_gqa): got query heads {hq}, key heads {hk}, value heads {hv}")
        if hq != hk:
            k = k.repeat_interleave(hq // hk, dim=-3)
            v = v.repeat_interleave(hq // hk, dim=-3)
    L, S = q.shape[-2], k.shape[-2]
    batch = _broadcast_shape(tuple(q.shape[:-2]), tuple(k.shape[:-2]), "query and key batch dims")
    _broadcast_shape(batch, tuple(v.shape[:-2]), "query/key and value batch dims")
    scores_shape = batch + (L, S)

    bias: Optional[Any] = None
    if is_causal:
        if attn_mask is not None:
            raise RuntimeValueError("_scaled_dot_product_attention: Explicit attn_mask should "
                                    "not be set when is_causal=True")
        bias = np.where(np.tril(np.ones((L, S), dtype=bool)), np.float32(0), _NEG_INF)
    elif attn_mask is not None:
        m = as_tensor(attn_mask)
        if m.dtype not in (np.bool_, np.float32):
            raise RuntimeTypeError(f"{op}: Expected attn_mask dtype to be bool or float or to "
                                   f"match query dtype, but got attn_mask.dtype: {m.dtype}")
        # the mask is added in place to the scores in torch: it may not enlarge them
        if _broadcast_shape(tuple(m.shape), scores_shape, "attn_mask and scores") \
                != scores_shape:
            raise RuntimeValueError(f"{op}: attn_mask of shape {m.shape} does not broadcast "
                                    f"to the attention scores' shape {scores_shape}")
        if m.dtype == np.bool_:
            bias = np.where(m.numpy(), np.float32(0), _NEG_INF)
        else:
            bias = m
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if bias is not None:
        s = s + bias
    w = _safe_softmax(s)
    if dropout_p > 0.0:
        w = F.dropout(w, dropout_p, training=True)
    return w @ v


# ------------------------------------------------------------------ multi-head attention

def _canonical_mask(mask: Any, mask_name: str, other_type: Any, other_name: str,
                    check_other: bool = True) -> Optional[Tensor]:
    """A bool mask (True = masked out) as a float32 additive mask (-inf / 0); float
    masks unchanged; other dtypes an error (torch's F._canonical_mask)."""
    if mask is None:
        return None
    m = as_tensor(mask)
    if m.dtype not in (np.bool_, np.float32):
        raise AssertionValueError(f"only bool and floating types of {mask_name} are supported, "
                                  f"got {m.dtype}")
    if check_other and other_type is not None and m.dtype != other_type:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use "
                      "same type for both instead.")
    if m.dtype == np.bool_:
        return Tensor._wrap(np.where(m.numpy(), _NEG_INF, np.float32(0)))
    return m


def _dtype_of(mask: Any) -> Any:
    return None if mask is None else as_tensor(mask).dtype


def _mha_shape_check(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any,
                     attn_mask: Any, num_heads: int) -> bool:
    """Whether the input is batched (3-D query) or not (2-D), checking the other ranks as
    torch's F._mha_shape_check (AssertionError there)."""
    kpm = None if key_padding_mask is None else as_tensor(key_padding_mask)
    am = None if attn_mask is None else as_tensor(attn_mask)
    if query.ndim == 3:
        batched, want, want_kpm = True, 3, 2
    elif query.ndim == 2:
        batched, want, want_kpm = False, 2, 1
    else:
        raise AssertionValueError("MultiheadAttention: query should be unbatched 2D or batched "
                                  f"3D tensor but received {query.ndim}-D query tensor")
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.ndim != want or value.ndim != want:
        raise AssertionValueError(
            f"MultiheadAttention: For {kind} `query`, expected `key` and `value` to be "
            f"{want}-D but found {key.ndim}-D and {value.ndim}-D tensors respectively")
    if kpm is not None and kpm.ndim != want_kpm:
        raise AssertionValueError(
            f"MultiheadAttention: For {kind} `query`, expected `key_padding_mask` to be `None` "
            f"or {want_kpm}-D but found {kpm.ndim}-D tensor instead")
    if am is not None:
        if am.ndim not in (2, 3):
            raise AssertionValueError(
                f"MultiheadAttention: For {kind} `query`, expected `attn_mask` to be `None`, "
                f"2-D or 3-D but found {am.ndim}-D tensor instead")
        if not batched and am.ndim == 3:
            expected = (num_heads, query.shape[0], key.shape[0])
            if tuple(am.shape) != expected:
                raise AssertionValueError(f"MultiheadAttention: Expected `attn_mask` shape to be "
                                          f"{expected} but got {am.shape}")
    return batched


def multi_head_attention_forward(
        query: Any, key: Any, value: Any, embed_dim_to_check: int, num_heads: int,
        in_proj_weight: Any, in_proj_bias: Any, bias_k: Any, bias_v: Any, add_zero_attn: bool,
        dropout_p: float, out_proj_weight: Any, out_proj_bias: Any, training: bool = True,
        key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
        use_separate_proj_weight: bool = False, q_proj_weight: Any = None,
        k_proj_weight: Any = None, v_proj_weight: Any = None, static_k: Any = None,
        static_v: Any = None, average_attn_weights: bool = True,
        is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """torch.nn.functional.multi_head_attention_forward, sequence-first: query (L, N, E)
    or unbatched (L, E), key (S, N, kdim), value (S, N, vdim). Returns the output (L, N,
    E) and, with need_weights, the attention weights (N, L, S), or (N, heads, L, S) when
    average_attn_weights is False (the batch dim dropped for unbatched input).
    key_padding_mask (N, S) and attn_mask (L, S) or (N * heads, L, S): bool (True = masked
    out) or float (added). With need_weights the weights are a plain softmax (a row with
    every key masked is NaN, as torch); without, this goes through
    scaled_dot_product_attention (such a row gives zeros, as torch)."""
    op = "MultiheadAttention"
    q_in, k_in, v_in = (float_input(t, op) for t in (query, key, value))
    batched = _mha_shape_check(q_in, k_in, v_in, key_padding_mask, attn_mask, num_heads)
    if not batched:
        q_in, k_in, v_in = q_in.unsqueeze(1), k_in.unsqueeze(1), v_in.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = as_tensor(key_padding_mask).unsqueeze(0)
    tgt_len, bsz, embed_dim = q_in.shape
    src_len = k_in.shape[0]
    kpm = _canonical_mask(key_padding_mask, "key_padding_mask", _dtype_of(attn_mask),
                          "attn_mask")
    if is_causal and attn_mask is None:
        raise RuntimeValueError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
            "module method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and kpm is None and not need_weights:
        # the mask is only a hint then: scaled_dot_product_attention's is_causal does it
        mask = None
    else:
        mask = _canonical_mask(attn_mask, "attn_mask", None, "", check_other=False)
        if kpm is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionValueError(f"{op}: was expecting embedding dimension of "
                                  f"{embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionValueError(f"{op}: embed_dim {embed_dim} not divisible by num_heads "
                                  f"{num_heads}")
    if use_separate_proj_weight:
        if tuple(k_in.shape[:2]) != tuple(v_in.shape[:2]):
            raise AssertionValueError(f"{op}: key's sequence and batch dims {k_in.shape[:2]} do "
                                      f"not match value's {v_in.shape[:2]}")
    elif tuple(k_in.shape) != tuple(v_in.shape):
        raise AssertionValueError(f"{op}: key shape {k_in.shape} does not match value shape "
                                  f"{v_in.shape}")
    if k_in.shape[1] != bsz:  # (torch fails later, in a reshape, with a RuntimeError)
        raise RuntimeValueError(f"{op}: key and value have batch size {k_in.shape[1]}, the "
                                f"query {bsz} (shapes {tuple(q_in.shape)} and "
                                f"{tuple(k_in.shape)}, sequence first)")

    # input projections
    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AssertionValueError(f"{op}: use_separate_proj_weight is True but q_proj_weight,"
                                      " k_proj_weight or v_proj_weight is None")
        w_q, w_k, w_v = (as_tensor(w) for w in (q_proj_weight, k_proj_weight, v_proj_weight))
    else:
        if in_proj_weight is None:
            raise AssertionValueError(f"{op}: use_separate_proj_weight is False but "
                                      "in_proj_weight is None")
        w_q, w_k, w_v = as_tensor(in_proj_weight).chunk(3, dim=0)
    for name, w, dim_in in (("q", w_q, embed_dim), ("k", w_k, k_in.shape[-1]),
                            ("v", w_v, v_in.shape[-1])):
        if tuple(w.shape) != (embed_dim, dim_in):
            raise AssertionValueError(f"{op}: expecting {name} projection weight of shape "
                                      f"{(embed_dim, dim_in)}, but got {w.shape}")
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = as_tensor(in_proj_bias).chunk(3, dim=0)
    q = F.linear(q_in, w_q, b_q)
    k = F.linear(k_in, w_k, b_k)
    v = F.linear(v_in, w_v, b_v)

    if mask is not None:
        if mask.ndim == 2:
            if tuple(mask.shape) != (tgt_len, src_len):
                raise RuntimeValueError(f"{op}: The shape of the 2D attn_mask is {mask.shape}, "
                                        f"but should be {(tgt_len, src_len)}.")
            mask = mask.unsqueeze(0)
        elif mask.ndim == 3:
            if tuple(mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeValueError(f"{op}: The shape of the 3D attn_mask is {mask.shape}, "
                                        f"but should be {(bsz * num_heads, tgt_len, src_len)}.")
        else:
            raise RuntimeValueError(f"{op}: attn_mask's dimension {mask.ndim} is not supported")

    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionValueError(f"{op}: bias cannot be added to static key / value")
        k = F.cat([k, as_tensor(bias_k).expand(1, bsz, embed_dim)], dim=0)
        v = F.cat([v, as_tensor(bias_v).expand(1, bsz, embed_dim)], dim=0)
        if mask is not None:
            mask = F.pad(mask, (0, 1))
        if kpm is not None:
            kpm = F.pad(kpm, (0, 1))
    elif bias_k is not None or bias_v is not None:
        raise AssertionValueError(f"{op}: bias_k and bias_v must both be given or both None")

    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    def heads(t: Tensor, static: Any, name: str) -> Tensor:
        """(S, bsz, E) -> (bsz * num_heads, S, head_dim), or the given static tensor."""
        if static is None:
            return t.reshape(t.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
        t = as_tensor(static)
        if t.ndim != 3 or t.shape[0] != bsz * num_heads or t.shape[2] != head_dim:
            raise AssertionValueError(f"{op}: expecting {name} of shape (bsz * num_heads, S, "
                                      f"head_dim) = ({bsz * num_heads}, S, {head_dim}), but got "
                                      f"{t.shape}")
        return t

    k = heads(k, static_k, "static_k")
    v = heads(v, static_v, "static_v")

    if add_zero_attn:
        zeros = Tensor._wrap(np.zeros((bsz * num_heads, 1, head_dim), dtype=np.float32))
        k = F.cat([k, zeros], dim=1)
        v = F.cat([v, zeros], dim=1)
        if mask is not None:
            mask = F.pad(mask, (0, 1))
        if kpm is not None:
            kpm = F.pad(kpm, (0, 1))
    src_len = k.shape[1]

    if kpm is not None:
        if tuple(kpm.shape) != (bsz, src_len):
            raise AssertionValueError(f"{op}: expecting key_padding_mask shape of "
                                      f"{(bsz, src_len)}, but got {kpm.shape}")
        kpm = kpm.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len) \
                 .reshape(bsz * num_heads, 1, src_len)
        mask = kpm if mask is None else mask + kpm

    if not training:
        dropout_p = 0.0

    if need_weights:
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        scores = q_scaled @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        weights = F.softmax(scores, dim=-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, dropout_p)
        out = (weights @ v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = F.linear(out, out_proj_weight, out_proj_bias)
        out = out.reshape(tgt_len, bsz, out.shape[1])
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights

    if mask is not None:
        if mask.shape[0] == 1 and mask.ndim == 3:
            mask = mask.unsqueeze(0)
        else:
            mask = mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = F.linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    if not batched:
        out = out.squeeze(1)
    return out, None


class NonDynamicallyQuantizableLinear(Linear):
    """The Linear of MultiheadAttention.out_proj (torch names its class so; it is a plain
    Linear here)."""


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: ``out_proj(concat_h softmax(q_h k_h^T / sqrt(head_dim)
    + mask) v_h)`` with q, k, v projected by in_proj_weight (3 * embed_dim, embed_dim)
    and in_proj_bias (3 * embed_dim,), or by q_proj_weight (E, E), k_proj_weight (E, kdim),
    v_proj_weight (E, vdim) when kdim or vdim differ from embed_dim. Initialised as torch:
    xavier_uniform_ projection weights, zero in_proj_bias and out_proj.bias, out_proj.weight
    as Linear's, bias_k / bias_v (1, 1, E) xavier_normal_. Inputs are (L, N, E)
    (batch_first: (N, L, E)) or unbatched (L, E); see forward."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: Optional[int] = None, vdim: Optional[int] = None,
                 batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "MultiheadAttention")
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads),
                            ("kdim", kdim), ("vdim", vdim)):
            if value is not None and (not isinstance(value, (int, np.integer))
                                      or isinstance(value, bool)):
                raise TypeError(f"MultiheadAttention: {name} must be an int, got {value!r}")
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        self.embed_dim = int(embed_dim)
        self.kdim = int(kdim) if kdim is not None else self.embed_dim
        self.vdim = int(vdim) if vdim is not None else self.embed_dim
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.num_heads = int(num_heads)
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = self.embed_dim // self.num_heads
        if self.head_dim * self.num_heads != self.embed_dim:
            raise AssertionValueError(f"MultiheadAttention: embed_dim must be divisible by "
                                      f"num_heads, got embed_dim={embed_dim} and "
                                      f"num_heads={num_heads}")
        E = self.embed_dim
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(np.empty((E, E), dtype=np.float32))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dtype=np.float32))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dtype=np.float32))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype=np.float32))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty((3 * E,), dtype=np.float32))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(E, E, bias=bias)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dtype=np.float32))
            self.bias_v = Parameter(np.empty((1, 1, E), dtype=np.float32))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(self, query: Any, key: Any, value: Any, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        """query (L, N, E), key (S, N, kdim), value (S, N, vdim), or (N, L, E) ... with
        batch_first, or unbatched (L, E), (S, kdim), (S, vdim). key_padding_mask (N, S) or
        (S,), attn_mask (L, S) or (N * num_heads, L, S): bool (True = not attended) or
        float (added to the scores). is_causal is a hint that attn_mask is the causal
        mask (it must be given). Returns (output like query, weights (N, L, S) averaged
        over heads or (N, num_heads, L, S); None unless need_weights)."""
        q, k, v = (as_tensor(t) for t in (query, key, value))
        batched = q.ndim == 3
        if self.batch_first and batched:
            # keep the identities (self-attention) that the projection tests on
            if key is value:
                if query is key:
                    q = k = v = q.transpose(1, 0)
                else:
                    q, k = q.transpose(1, 0), k.transpose(1, 0)
                    v = k
            else:
                q, k, v = q.transpose(1, 0), k.transpose(1, 0), v.transpose(1, 0)
        out, weights = multi_head_attention_forward(
            q, k, v, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight,
            self.out_proj.bias, training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal)
        if self.batch_first and batched:
            out = out.transpose(1, 0)
        return out, weights


# ------------------------------------------------------------------ transformer encoder

def _get_activation_fn(activation: str) -> Callable[[Any], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise RuntimeValueError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    """torch.nn.TransformerEncoderLayer: self-attention then a feed-forward block
    (linear1 -> activation -> dropout -> linear2), each with a residual connection and
    LayerNorm, after (norm_first=False) or before (norm_first=True) the block. Submodules
    self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2 (torch's
    names, so its state_dict loads). activation: "relu", "gelu" or a callable."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1,
                 activation: Union[str, Callable[[Any], Tensor]] = F.relu,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "TransformerEncoderLayer")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)
        self.activation = activation

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        """src (S, N, E) ((N, S, E) with batch_first) or unbatched (S, E); src_mask (S, S)
        or (N * nhead, S, S), src_key_padding_mask (N, S): bool (True = not attended) or
        float (added). is_causal: a hint that src_mask is the causal mask."""
        x = as_tensor(src)
        src_key_padding_mask = _canonical_mask(src_key_padding_mask, "src_key_padding_mask",
                                               _dtype_of(src_mask), "src_mask")
        src_mask = _canonical_mask(src_mask, "src_mask", None, "", check_other=False)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any,
                  is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


def _detect_is_causal_mask(mask: Optional[Tensor], is_causal: Optional[bool],
                           size: Optional[int]) -> bool:
    """is_causal if given; else whether the (canonical, float) mask is exactly the causal
    mask triu(full((S, S), -inf), 1), as torch's _detect_is_causal_mask."""
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.shape[-2]
        causal = np.triu(np.full((sz, sz), _NEG_INF), 1)
        make_causal = tuple(mask.shape) == causal.shape and \
            bool(np.array_equal(mask.detach().numpy(), causal))
    return make_causal


class TransformerEncoder(Module):
    """torch.nn.TransformerEncoder: num_layers deep copies of encoder_layer (so all start
    with its weights, as torch), applied in turn, then the optional norm. Submodules
    layers.<i> and norm. enable_nested_tensor is accepted and has no effect (no nested
    tensors here: padded positions are computed, where torch's inference fast path
    returns zeros for them)."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Optional[Module] = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True) -> None:
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got "
                            f"{type(encoder_layer).__name__}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src: Any, mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: Optional[bool] = None) -> Tensor:
        """src, mask (S, S) or (N * nhead, S, S), src_key_padding_mask (N, S) as
        TransformerEncoderLayer.forward; is_causal None detects a causal mask."""
        out = as_tensor(src)
        src_key_padding_mask = _canonical_mask(src_key_padding_mask, "src_key_padding_mask",
                                               _dtype_of(mask), "mask")
        mask = _canonical_mask(mask, "mask", None, "", check_other=False)
        batch_first = bool(len(self.layers) and getattr(
            getattr(self.layers[0], "self_attn", None), "batch_first", False))
        seq_len = out.shape[0] if out.ndim == 2 else out.shape[1 if batch_first else 0]
        is_causal = _detect_is_causal_mask(mask, is_causal, seq_len)
        for mod in self.layers:
            out = mod(out, src_mask=mask, is_causal=is_causal,
                      src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            out = self.norm(out)
        return out
