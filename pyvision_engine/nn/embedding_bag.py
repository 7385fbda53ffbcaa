"""nn.EmbeddingBag (torch.nn.modules.sparse): bags of embeddings reduced by sum, mean or
max without building the per-index lookup."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn import init
from pyvision_engine.nn._f_common import AssertionValueError, check_factory_kwargs
from pyvision_engine.nn._f_embedding_bag import embedding_bag
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["EmbeddingBag"]


def _bag_padding_index(padding_idx: Optional[int], num: int) -> Optional[int]:
    """torch's EmbeddingBag rule: within [-num, num), a negative one counted from the end."""
    if padding_idx is None:
        return None
    if padding_idx > 0 and padding_idx >= num:
        raise AssertionValueError("padding_idx must be within num_embeddings")
    if padding_idx < 0:
        if padding_idx < -num:
            raise AssertionValueError("padding_idx must be within num_embeddings")
        padding_idx = num + padding_idx
    return padding_idx


class EmbeddingBag(Module):
    """torch.nn.EmbeddingBag: weight (num_embeddings, embedding_dim) drawn from N(0, 1)
    with the padding_idx row zeroed; ``forward(input, offsets=None,
    per_sample_weights=None)`` returns (B, embedding_dim) per-bag sums, means (default)
    or maxima (see F.embedding_bag). ``_weight`` supplies the weight (shared, as
    torch's). sparse=True is refused at forward (NotImplementedError)."""

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 max_norm: Optional[float] = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                 _weight: Optional[Any] = None, include_last_offset: bool = False,
                 padding_idx: Optional[int] = None, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "EmbeddingBag")
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"EmbeddingBag: {name} must be a non-negative int, got "
                                 f"{value!r}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.padding_idx = _bag_padding_index(padding_idx, self.num_embeddings)
        if _weight is None:
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim),
                                             dtype=np.float32))
            self.reset_parameters()
        else:
            w = as_tensor(_weight)
            if tuple(w.shape) != (self.num_embeddings, self.embedding_dim):
                raise AssertionValueError("Shape of weight does not match num_embeddings and "
                                          "embedding_dim")
            self.weight = Parameter(w.detach())
        self.mode = mode
        self.sparse = sparse
        self.include_last_offset = include_last_offset

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, input: Any, offsets: Optional[Any] = None,
                per_sample_weights: Optional[Any] = None) -> Tensor:
        return embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type,
                             self.scale_grad_by_freq, self.mode, self.sparse, per_sample_weights,
                             self.include_last_offset, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings!r}, {self.embedding_dim!r}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm!r}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type!r}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq!r}"
        s += f", mode={self.mode!r}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx!r}"
        return s

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,
                        max_norm: Optional[float] = None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, mode: str = "mean",
                        sparse: bool = False, include_last_offset: bool = False,
                        padding_idx: Optional[int] = None) -> "EmbeddingBag":
        """An EmbeddingBag whose weight is ``embeddings`` (2-D; shared, not copied, when
        it is a float32 tensor), frozen unless ``freeze=False``; the padding_idx row is
        left as given."""
        e = as_tensor(embeddings)
        if e.ndim != 2:
            raise AssertionValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = e.shape
        bag = cls(num_embeddings=rows, embedding_dim=cols, _weight=e, max_norm=max_norm,
                  norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq, mode=mode,
                  sparse=sparse, include_last_offset=include_last_offset,
                  padding_idx=padding_idx)
        bag.weight.requires_grad = not freeze
        return bag
