"""pve.optim: torch.optim's optimizers and schedulers over fused C++ update kernels."""

from pyvision_engine.optim import lr_scheduler
from pyvision_engine.optim.adadelta import Adadelta
from pyvision_engine.optim.adafactor import Adafactor
from pyvision_engine.optim.adagrad import Adagrad
from pyvision_engine.optim.adam import Adam
from pyvision_engine.optim.adamax import Adamax
from pyvision_engine.optim.adamw import AdamW
from pyvision_engine.optim.asgd import ASGD
from pyvision_engine.optim.lbfgs import LBFGS
from pyvision_engine.optim.lookahead import Lookahead
from pyvision_engine.optim.nadam import NAdam
from pyvision_engine.optim.optimizer import Optimizer
from pyvision_engine.optim.radam import RAdam
from pyvision_engine.optim.rmsprop import RMSprop
from pyvision_engine.optim.rprop import Rprop
from pyvision_engine.optim.sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad",
    "Adadelta", "Rprop", "ASGD", "LBFGS", "Adafactor", "Lookahead", "lr_scheduler",
]
from pyvision_engine.optim import swa_utils  # noqa: E402

__all__ += ["swa_utils"]
# Optimizers a CNN program does not need load on first use (module __getattr__).
_LAZY = {"Muon": "pyvision_engine.optim.muon"}
__all__ += list(_LAZY)
from pyvision_engine._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
