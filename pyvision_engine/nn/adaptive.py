"""nn.AdaptiveLogSoftmaxWithLoss (torch.nn.modules.adaptive): the adaptive softmax of
Grave et al. 2017, "Efficient softmax approximation for GPUs".

Classes are split by ``cutoffs`` into a shortlist (the most frequent classes) and tail
clusters. The head scores the shortlist plus one entry per cluster; cluster i scores its
own classes through a low-rank projection of width in_features // div_value**(i+1). A
target's log-probability is its head log-probability, or for a tail class the head
log-probability of its cluster plus its log-probability within the cluster.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, List, Sequence

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import (
    RuntimeTypeError, RuntimeValueError, check_factory_kwargs, float_input,
)
from pyvision_engine.nn.container import ModuleList, Sequential
from pyvision_engine.nn.linear import Linear
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["AdaptiveLogSoftmaxWithLoss"]

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])
_NAME = "AdaptiveLogSoftmaxWithLoss"


def _checked_cutoffs(cutoffs: Sequence[int], n_classes: int) -> List[int]:
    cutoffs = list(cutoffs)
    if len(cutoffs) == 0:
        raise ValueError("cutoffs should be a sequence of length larger than 0")
    if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
            or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
        raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an "
                         "increasing order, where each value is between 1 and n_classes-1")
    return cutoffs


class AdaptiveLogSoftmaxWithLoss(Module):
    """Adaptive softmax (torch's module, same parameters and state_dict keys:
    ``head.weight`` (shortlist + clusters, in_features), ``head.bias`` with head_bias,
    ``tail.i.0.weight`` (hsz_i, in_features) and ``tail.i.1.weight`` (osz_i, hsz_i)).

    forward(input (N, in_features) or (in_features,), target (N,) or () int64) returns
    the named tuple (output: the targets' log-probabilities, loss: mean of -output).
    log_prob(input (N, in_features)) gives all n_classes log-probabilities; predict
    gives the most probable class per row. Labels should be sorted by frequency (0 the
    most frequent)."""

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int],
                 div_value: float = 4.0, head_bias: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, _NAME)
        cutoffs = _checked_cutoffs(cutoffs, n_classes)
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(self.in_features, self.head_size, bias=self.head_bias)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hsz = int(self.in_features // (self.div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(self.in_features, hsz, bias=False),
                                        Linear(hsz, osz, bias=False)))

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for projection in self.tail:
            for linear in projection:
                linear.reset_parameters()

    # ------------------------------------------------------------------ forward
    def _batched(self, input_: Any, target_: Any):
        """(input (N, F), int64 target (N,) numpy, whether batched), after torch's
        shape checks."""
        x, t = float_input(input_, _NAME), as_tensor(target_)
        if t.ndim == 1:
            if x.ndim == 0 or x.shape[0] != t.shape[0]:
                raise RuntimeValueError("Input and target should have the same size in the batch "
                                        "dimension.")
            if x.ndim != 2:
                raise RuntimeValueError("1D target tensor expects 2D input tensors, but found "
                                        f"inputs with size {tuple(x.shape)}")
        elif t.ndim == 0:
            if x.ndim != 1:
                raise RuntimeValueError("0D target tensor expects 1D input tensors, but found "
                                        f"inputs with size {tuple(x.shape)}")
        else:
            raise RuntimeValueError("0D or 1D target tensor expected, multi-target not "
                                    "supported")
        if t.dtype != np.int64:
            raise RuntimeTypeError(f"{_NAME}: target must be int64 class indices, got {t.dtype}")
        batched = t.ndim > 0
        if not batched:
            x = x.reshape((1,) + tuple(x.shape))
        return x, t._data.reshape(-1), batched

    def _check_targets(self, target: np.ndarray) -> None:
        if target.size and (target.min() < 0 or target.max() >= self.n_classes):
            raise RuntimeValueError(f"Target values should be in [0, {self.n_classes - 1}], but "
                                    f"values in range [{target.min()}, {target.max()}] were "
                                    "found. ")

    def forward(self, input_: Any, target_: Any) -> "_ASMoutput":
        x, target, batched = self._batched(input_, target_)
        self._check_targets(target)
        # 0: the shortlist; i >= 1: tail cluster i
        cluster = np.searchsorted(self.cutoffs, target, side="right")
        head_index = np.where(cluster == 0, target, self.shortlist_size + cluster - 1)
        head_logprob = F.log_softmax(self.head(x), dim=1)
        output = head_logprob.gather(1, Tensor._wrap(head_index[:, None])).reshape(-1)
        for i in range(1, self.n_clusters + 1):
            rows = np.flatnonzero(cluster == i)
            if rows.size == 0:
                continue
            logits = self.tail[i - 1](x.index_select(0, Tensor._wrap(rows)))
            within = (target[rows] - self.cutoffs[i - 1])[:, None]
            local = F.log_softmax(logits, dim=1).gather(1, Tensor._wrap(within)).reshape(-1)
            output = output.index_add(0, Tensor._wrap(rows), local)
        loss = (-output).mean()
        if not batched:
            output = output.reshape(())
        return _ASMoutput(output, loss)

    # ------------------------------------------------------------------ full distribution
    def _get_full_log_prob(self, input: Tensor, head_output: Tensor) -> Tensor:
        """(N, n_classes) log-probabilities from the input and the head's output."""
        head_logprob = F.log_softmax(head_output, dim=1)
        short = self.shortlist_size
        parts = [head_logprob[:, :short]]
        for i, projection in enumerate(self.tail):
            cluster_logprob = F.log_softmax(projection(input), dim=1)
            parts.append(cluster_logprob + head_logprob[:, short + i:short + i + 1])
        return F.cat(parts, 1)

    def _matrix(self, input: Any, method: str) -> Tensor:
        x = float_input(input, _NAME)
        if x.ndim != 2:
            raise RuntimeValueError(f"{_NAME}.{method}: expected input (N, in_features), got "
                                    f"shape {tuple(x.shape)}")
        return x

    def log_prob(self, input: Any) -> Tensor:
        """log-probabilities (N, n_classes) of every class for input (N, in_features)."""
        x = self._matrix(input, "log_prob")
        return self._get_full_log_prob(x, self.head(x))

    def predict(self, input: Any) -> Tensor:
        """The most probable class (int64, (N,)) of each row of input (N, in_features):
        the head's argmax when it lies in the shortlist, else the full distribution's."""
        x = self._matrix(input, "predict")
        head_output = self.head(x)
        output = np.argmax(head_output.detach().numpy(), axis=1).astype(np.int64)
        outside = np.flatnonzero(output >= self.shortlist_size)
        if outside.size:
            rows = Tensor._wrap(outside)
            log_prob = self._get_full_log_prob(x.index_select(0, rows),
                                               head_output.index_select(0, rows))
            output[outside] = np.argmax(log_prob.detach().numpy(), axis=1)
        return Tensor._wrap(output)
