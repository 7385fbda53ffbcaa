"""nn.CTCLoss: the module form of F.ctc_loss (torch.nn.CTCLoss), for CRNN-style OCR."""

from __future__ import annotations

from typing import Any

from pyvision_engine.nn._f_ctc import ctc_loss
from pyvision_engine.nn.loss import _Loss
from pyvision_engine.tensor import Tensor

__all__ = ["CTCLoss"]


class CTCLoss(_Loss):
    """Connectionist Temporal Classification loss of log-probabilities (T, N, C) (or
    unbatched (T, C)) against padded (N, S) or concatenated targets; see F.ctc_loss.

    blank: the blank class index (0); reduction: 'mean' (each loss over its target
    length, then the batch mean), 'sum' or 'none'; zero_infinity: impossible targets
    (inf loss) give 0 and a zero gradient.
    """

    def __init__(self, blank: int = 0, reduction: str = "mean",
                 zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank = blank
        self.zero_infinity = zero_infinity

    def forward(self, log_probs: Any, targets: Any, input_lengths: Any,
                target_lengths: Any) -> Tensor:
        return ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                        self.reduction, self.zero_infinity)
