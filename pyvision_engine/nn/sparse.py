"""nn.Embedding (torch.nn.modules.sparse): a lookup table of embedding vectors."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn import init
from pyvision_engine.nn._f_common import (
    AssertionValueError, NotImplementedValueError, check_factory_kwargs,
)
from pyvision_engine.nn._f_embedding import _padding_index, embedding
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["Embedding"]


class Embedding(Module):
    """torch.nn.Embedding: weight (num_embeddings, embedding_dim) drawn from N(0, 1), the
    padding_idx row (negative counts from the end) zeroed and given no gradient; max_norm
    / norm_type renormalise looked-up rows in place, scale_grad_by_freq scales gradients
    by inverse batch frequency (see F.embedding). ``_weight`` / ``_freeze`` (torch's
    private arguments, used by from_pretrained) supply the weight and its
    requires_grad. sparse=True is not supported (NotImplementedError)."""

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Optional[Any] = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "Embedding")
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Embedding: {name} must be a non-negative int, got {value!r}")
        if sparse:
            raise NotImplementedValueError("Embedding: sparse=True (sparse gradients) is not "
                                           "supported by this engine; use sparse=False")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = None if padding_idx is None else \
            _padding_index(padding_idx, self.num_embeddings, "Embedding")
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim),
                                             dtype=np.float32), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = as_tensor(_weight)
            if tuple(w.shape) != (self.num_embeddings, self.embedding_dim):
                raise AssertionValueError(
                    "Embedding: shape of weight does not match num_embeddings and "
                    f"embedding_dim: {tuple(w.shape)} vs "
                    f"{(self.num_embeddings, self.embedding_dim)}")
            self.weight = Parameter(w.detach(), requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, input: Any) -> Tensor:
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        return s

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,
                        padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` (2-D; shared, not copied, when it
        already is a float32 tensor, as torch), frozen unless ``freeze=False``. The
        padding_idx row is left as given, as torch."""
        e = as_tensor(embeddings)
        if e.ndim != 2:
            raise AssertionValueError("Embedding.from_pretrained: Embeddings parameter is "
                                      f"expected to be 2-dimensional, got shape {e.shape}")
        rows, cols = e.shape
        return cls(num_embeddings=rows, embedding_dim=cols, _weight=e, _freeze=freeze,
                   padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)
