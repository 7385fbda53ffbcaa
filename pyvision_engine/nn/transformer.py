"""nn.TransformerDecoderLayer, nn.TransformerDecoder and nn.Transformer (torch.nn's
semantics, argument names and state_dict keys, so a torch state_dict loads strictly).

MultiheadAttention and the encoder side live in nn.attention; they are re-exported here,
as torch.nn.modules.transformer does. Everything is composed of differentiable modules,
so gradients are autograd's."""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Union

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn import init
from pyvision_engine.nn._f_common import (
    AssertionValueError, RankError, RuntimeValueError, check_factory_kwargs,
)
from pyvision_engine.nn.attention import (
    MultiheadAttention, TransformerEncoder, TransformerEncoderLayer, _get_activation_fn,
)
from pyvision_engine.nn.container import ModuleList
from pyvision_engine.nn.dropout import Dropout
from pyvision_engine.nn.linear import Linear
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.normalization import LayerNorm
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["Transformer", "TransformerEncoder", "TransformerDecoder",
           "TransformerEncoderLayer", "TransformerDecoderLayer"]

Activation = Union[str, Callable[[Any], Tensor]]


class NoLayersError(ValueError, IndexError):
    """A TransformerDecoder built with num_layers=0 is run: torch's forward reads
    layers[0] (IndexError there), this engine's contract wants a ValueError; it is both."""


# ------------------------------------------------------------------ masks

def _is_bool_dtype(dtype: Any) -> bool:
    if dtype is None or isinstance(dtype, str):  # strings are not dtypes in torch
        return False
    if str(dtype) == "torch.bool":
        return True
    try:
        return np.dtype(dtype) == np.bool_
    except TypeError:
        return False


def _causal_mask_array(size: int, boolean: bool) -> np.ndarray:
    """torch's triu(full((size, size), -inf), 1) in float32, or in bool (where -inf is
    True: True above the diagonal)."""
    upper = np.triu(np.ones((size, size), dtype=bool), 1)
    if boolean:
        return upper
    return np.where(upper, np.float32(-np.inf), np.float32(0.0))


def _generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
    what = "Transformer.generate_square_subsequent_mask"
    if not isinstance(sz, (int, np.integer)) or isinstance(sz, bool):
        raise TypeError(f"{what}: sz must be an int, got {sz!r}")
    boolean = _is_bool_dtype(dtype)
    check_factory_kwargs(device, None if boolean else dtype, what)
    if sz < 0:
        raise RuntimeValueError(f"{what}: Trying to create tensor with negative dimension "
                                f"{sz}: [{sz}, {sz}]")
    return Tensor(_causal_mask_array(int(sz), boolean))


def _detect_is_causal_mask(mask: Any, is_causal: Optional[bool], size: int) -> bool:
    """is_causal if given (only True counts, as torch); else whether the mask, bool or
    float as given, equals the causal mask of that dtype and size (torch's
    _detect_is_causal_mask, which compares before any conversion to a float mask)."""
    if is_causal is not None or mask is None:
        return is_causal is True
    m = as_tensor(mask)
    if m.dtype not in (np.bool_, np.float32):
        # torch fails building a causal mask of that dtype (RuntimeError)
        raise RuntimeValueError(f"TransformerDecoder: tgt_mask must be bool or float to be "
                                f"compared with the causal mask, got dtype {m.dtype}")
    causal = _causal_mask_array(size, m.dtype == np.bool_)
    return tuple(m.shape) == causal.shape and bool(np.array_equal(m.detach().numpy(), causal))


def _seq_len(x: Tensor, batch_first: bool) -> int:
    """The sequence length of a decoder input: (T, E), (T, N, E) or (N, T, E)."""
    if x.ndim not in (2, 3):
        raise AssertionValueError("TransformerDecoder: tgt should be unbatched 2D or batched "
                                  f"3D tensor but received {x.ndim}-D tgt tensor")
    return x.shape[0] if x.ndim == 2 else x.shape[1 if batch_first else 0]


# ------------------------------------------------------------------ decoder

class TransformerDecoderLayer(Module):
    """torch.nn.TransformerDecoderLayer: self-attention on tgt, attention from tgt to
    memory (multihead_attn), then a feed-forward block (linear1 -> activation -> dropout
    -> linear2), each with a residual connection, a dropout (dropout1, dropout2, dropout3)
    and a LayerNorm (norm1, norm2, norm3) after (norm_first=False) or before
    (norm_first=True) the block. activation: "relu", "gelu" or a callable."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Activation = F.relu,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "TransformerDecoderLayer")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout,
                                            batch_first=batch_first, bias=bias)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout,
                                                 batch_first=batch_first, bias=bias)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)
        elif not callable(activation):
            raise TypeError("TransformerDecoderLayer: activation must be 'relu', 'gelu' or a "
                            f"callable, got {activation!r}")
        self.activation = activation

    def forward(self, tgt: Any, memory: Any, tgt_mask: Any = None, memory_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        """tgt (T, N, E) ((N, T, E) with batch_first) or unbatched (T, E); memory (S, N,
        E) likewise. tgt_mask (T, T) or (N * nhead, T, T), memory_mask (T, S) or (N *
        nhead, T, S), key padding masks (N, T) / (N, S) ((T,) / (S,) unbatched): bool
        (True = not attended) or float (added). The is_causal flags are hints that the
        matching mask is the causal one (it must then be given)."""
        x, mem = as_tensor(tgt), as_tensor(memory)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask,
                                   tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), mem, memory_mask, memory_key_padding_mask,
                                    memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask,
                                              tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, mem, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any,
                  is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           is_causal=is_causal, need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x: Tensor, mem: Tensor, attn_mask: Any, key_padding_mask: Any,
                   is_causal: bool) -> Tensor:
        self._check_memory(x, mem)
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)

    def _check_memory(self, x: Tensor, mem: Tensor) -> None:
        """memory of another feature size or batch size than tgt fails in torch's key
        projection or head split (RuntimeError), after the attention's rank and query
        checks, which stay first."""
        attn = self.multihead_attn
        if mem.ndim != x.ndim or x.ndim not in (2, 3) or x.shape[-1] != attn.embed_dim:
            return
        if mem.shape[-1] != attn.embed_dim:
            raise RuntimeValueError(f"TransformerDecoderLayer: memory's feature size must be "
                                    f"d_model={attn.embed_dim}, got memory of shape {mem.shape}")
        batch_dim = 0 if attn.batch_first else 1
        if x.ndim == 3 and mem.shape[batch_dim] != x.shape[batch_dim]:
            raise RuntimeValueError(f"TransformerDecoderLayer: memory's batch size must equal "
                                    f"tgt's ({x.shape[batch_dim]}), got memory of shape "
                                    f"{mem.shape} for tgt of shape {x.shape}")


def _get_clones(module: Module, n: int) -> ModuleList:
    """n deep copies: every layer starts with the same weights and no .grad, as torch's
    (Parameter.__deepcopy__ leaves the gradient behind)."""
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


class TransformerDecoder(Module):
    """torch.nn.TransformerDecoder: num_layers deep copies of decoder_layer (all start
    with its weights, as torch), applied in turn to tgt with the same memory, then the
    optional norm. Submodules layers.<i> and norm."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int,
                 norm: Optional[Module] = None) -> None:
        super().__init__()
        if not isinstance(decoder_layer, Module):
            raise TypeError(f"TransformerDecoder: decoder_layer must be a Module, got "
                            f"{type(decoder_layer).__name__}")
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Any, memory: Any, tgt_mask: Any = None, memory_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                tgt_is_causal: Optional[bool] = None, memory_is_causal: bool = False) -> Tensor:
        """As TransformerDecoderLayer.forward; tgt_is_causal None detects whether tgt_mask
        is the causal mask (torch's behaviour)."""
        if len(self.layers) == 0:
            raise NoLayersError("TransformerDecoder: has no layers (num_layers=0); torch's "
                                "forward fails too (index 0 is out of range)")
        out, mem = as_tensor(tgt), as_tensor(memory)
        seq_len = _seq_len(out, self.layers[0].self_attn.batch_first)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, seq_len)
        for layer in self.layers:
            out = layer(out, mem, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


# ------------------------------------------------------------------ full model

class Transformer(Module):
    """torch.nn.Transformer: an encoder (num_encoder_layers TransformerEncoderLayers and a
    final LayerNorm, or custom_encoder) over src, and a decoder (num_decoder_layers
    TransformerDecoderLayers and a final LayerNorm, or custom_decoder) over tgt attending
    to the encoder's output. Every parameter with more than one dim (custom modules'
    too) is then re-initialised xavier_uniform_, as torch."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Activation = F.relu,
                 custom_encoder: Optional[Any] = None, custom_decoder: Optional[Any] = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "Transformer")
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                      batch_first, norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(
                TransformerEncoderLayer(*layer_args), num_encoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(
                TransformerDecoderLayer(*layer_args), num_decoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(self, src: Any, tgt: Any, src_mask: Any = None, tgt_mask: Any = None,
                memory_mask: Any = None, src_key_padding_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                src_is_causal: Optional[bool] = None, tgt_is_causal: Optional[bool] = None,
                memory_is_causal: bool = False) -> Tensor:
        """src (S, N, E), tgt (T, N, E) ((N, S, E), (N, T, E) with batch_first) or
        unbatched (S, E), (T, E). src_mask (S, S) or (N * nhead, S, S), tgt_mask (T, T) or
        (N * nhead, T, T), memory_mask (T, S); key padding masks (N, S) / (N, T) / (N, S)
        ((S,) / (T,) / (S,) unbatched): bool (True = not attended) or float (added).
        src_is_causal / tgt_is_causal None detect a causal mask. Returns (T, N, E)."""
        src_t, tgt_t = as_tensor(src), as_tensor(tgt)
        self._check_inputs(src_t, tgt_t)
        memory = self.encoder(src_t, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt_t, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    def _check_inputs(self, src: Tensor, tgt: Tensor) -> None:
        """torch's checks, in its order: the batch sizes (compared only for a 3-D src,
        though torch reads that dim of both first), then the feature sizes."""
        batch_dim = 0 if self.batch_first else 1
        if src.ndim <= batch_dim or tgt.ndim <= batch_dim:
            layout = "(N, S, E) / (N, T, E)" if self.batch_first else "(S, N, E) / (T, N, E)"
            raise RankError(f"Transformer: expected src / tgt of shapes {layout} or unbatched "
                            f"(S, E) / (T, E), got {src.shape} and {tgt.shape}")
        if src.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise RuntimeValueError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeValueError("the feature number of src and tgt must be equal to "
                                    "d_model")

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None,
                                        dtype: Any = None) -> Tensor:
        """The (sz, sz) causal mask: -inf above the diagonal, 0 elsewhere (float32), or
        True above the diagonal for a bool dtype, as torch."""
        return _generate_square_subsequent_mask(sz, device=device, dtype=dtype)

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
