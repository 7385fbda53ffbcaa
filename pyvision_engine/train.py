"""A thin training loop: ``fit``, ``evaluate``, ``predict`` and two callbacks.

    history = pve.train.fit(model, train_loader, optimizer, nn.CrossEntropyLoss(), epochs=10,
                            val_loader=test_loader, scheduler=sched, clip_grad_norm=5.0,
                            callbacks=[EarlyStopping(patience=3), ModelCheckpoint("best.safetensors")],
                            checkpoint="last.ckpt")          # resume=... continues bit-identically

Everything it does is the usual loop (zero_grad, forward, loss, backward, clip,
step, scheduler); it adds a tqdm bar (loss, accuracy, images/s), validation
each epoch, atomic checkpoints, and resuming: a run stopped after epoch k and
resumed from its checkpoint ends with the same weights, bit for bit, as an
uninterrupted run (model, optimizer, scheduler, callbacks, the engine's RNG
and the loader's generator are all restored).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["fit", "evaluate", "predict", "Callback", "EarlyStopping", "ModelCheckpoint",
           "accuracy", "confusion_matrix"]


# ----------------------------------------------------------------- metrics
def _logits_array(output: Any) -> np.ndarray:
    if isinstance(output, Tensor):
        return output._data
    return np.asarray(output)


def _targets_array(target: Any) -> np.ndarray:
    if isinstance(target, Tensor):
        return target._data
    return np.asarray(target)


def topk_correct(logits: np.ndarray, targets: np.ndarray, ks: Sequence[int]) -> List[int]:
    """How many rows have their target among the k largest logits, for each k."""
    if logits.ndim != 2:
        raise ValueError(f"topk_correct: expected (N, classes) outputs, got shape {logits.shape}")
    kmax = min(max(ks), logits.shape[1])
    # argsort of -logits is stable: ties go to the lower class index, as argmax does.
    top = np.argsort(-logits, axis=1, kind="stable")[:, :kmax]
    hits = top == targets.reshape(-1, 1)
    return [int(hits[:, :min(k, kmax)].any(axis=1).sum()) for k in ks]


def accuracy(output: Any, target: Any, topk: Sequence[int] = (1,)) -> List[float]:
    """Top-k accuracy (fractions in [0, 1]) of (N, classes) outputs for integer targets."""
    logits, targets = _logits_array(output), _targets_array(target)
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(f"accuracy: {logits.shape[0]} outputs but {targets.shape[0]} targets")
    n = max(targets.shape[0], 1)
    return [c / n for c in topk_correct(logits, targets, topk)]


def confusion_matrix(predictions: Any, targets: Any, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    p = np.asarray(_targets_array(predictions), dtype=np.int64).reshape(-1)
    t = np.asarray(_targets_array(targets), dtype=np.int64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"confusion_matrix: {p.size} predictions but {t.size} targets")
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: class indices must be in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def _split_batch(batch: Any) -> Tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError("fit/evaluate: each batch must be an (inputs, targets) pair, got "
                    f"{type(batch).__name__}")


def _batch_size(x: Any) -> int:
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape else 1


def _default_loss() -> Callable:
    from pyvision_engine import nn

    if not hasattr(nn, "CrossEntropyLoss"):
        raise ValueError("fit: pass loss_fn (nn.CrossEntropyLoss is not available in this build)")
    return nn.CrossEntropyLoss()


# ---------------------------------------------------------------- callbacks
class Callback:
    """Hooks called by :func:`fit`. ``logs`` holds the epoch's metrics
    (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``val_top5``, ``lr``...)."""

    def on_train_begin(self, state: "FitState") -> None:
        pass

    def on_epoch_end(self, state: "FitState", epoch: int, logs: Dict[str, float]) -> None:
        pass

    def on_train_end(self, state: "FitState") -> None:
        pass

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


def _improved(value: float, best: Optional[float], mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _resolve_mode(mode: str, monitor: str, owner: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or "top" in monitor) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    optionally put back the best epoch's weights at the end."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, got {patience!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(float(min_delta))
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = restore_best_weights
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.wait = 0
        self.stopped_epoch: Optional[int] = None
        self._best_weights: Optional[Dict[str, np.ndarray]] = None

    def on_epoch_end(self, state: "FitState", epoch: int, logs: Dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: metric {self.monitor!r} is not available; have "
                             f"{sorted(logs)}")
        value = float(logs[self.monitor])
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = {k: v._data.copy() for k, v in state.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                state.stop_training = True

    def on_train_end(self, state: "FitState") -> None:
        if self.restore_best_weights and self._best_weights is not None:
            state.model.load_state_dict(self._best_weights)

    def state_dict(self) -> Dict[str, Any]:
        # The best weights go into the checkpoint (as tensors) so that a resumed run
        # still ends with them, as the uninterrupted run does.
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self._best_weights}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        weights = state.get("best_weights")  # absent in older checkpoints
        self._best_weights = None if weights is None else {k: np.array(v) for k, v in weights.items()}


class ModelCheckpoint(Callback):
    """Save the model's weights (``pve.save``, safetensors) when ``monitor`` improves
    (``save_best_only=True``) or after every epoch. ``path`` may contain ``{epoch}``."""

    def __init__(self, path: str, monitor: str = "val_accuracy", mode: str = "auto",
                 save_best_only: bool = True) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"ModelCheckpoint: path must be a str, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_best_only = save_best_only
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.saved: List[str] = []

    def on_epoch_end(self, state: "FitState", epoch: int, logs: Dict[str, float]) -> None:
        from pyvision_engine.io import save

        if self.save_best_only:
            if self.monitor not in logs:
                raise ValueError(f"ModelCheckpoint: metric {self.monitor!r} is not available; "
                                 f"have {sorted(logs)}")
            value = float(logs[self.monitor])
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best, self.best_epoch = value, epoch
        path = self.path.format(epoch=epoch + 1)
        save(state.model.state_dict(), path, metadata={
            "epoch": str(epoch + 1), **{k: repr(v) for k, v in logs.items()}})
        self.saved.append(path)

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class FitState:
    """What callbacks see: the model, optimizer, the epoch, and ``stop_training``."""

    def __init__(self, model: Any, optimizer: Any, scheduler: Any) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.epoch = 0
        self.stop_training = False
        self.history: List[Dict[str, float]] = []


# ------------------------------------------------------------------- loops
def _progress(iterable: Iterable, total: Optional[int], desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=True, dynamic_ncols=True,
                file=sys.stderr, unit="batch")


def set_mode(model: Any, training: bool) -> None:
    """``model.train(training)`` (which reaches every layer's own ``train`` override, so
    layers drop inference caches such as packed convolution weights)."""
    if hasattr(model, "train"):
        model.train(training)


def _current_lr(optimizer: Any) -> Optional[float]:
    groups = getattr(optimizer, "param_groups", None)
    if groups:
        lr = groups[0].get("lr")
        return float(lr) if isinstance(lr, numbers.Real) else None
    return None


def _loader_generator(loader: Any) -> Optional[np.random.Generator]:
    g = getattr(loader, "generator", None)
    return g if isinstance(g, np.random.Generator) else None


def _check_fit_args(model: Any, train_loader: Any, optimizer: Any, epochs: Any,
                    clip_grad_norm: Any, scheduler_step: str) -> None:
    if not callable(model) or not hasattr(model, "parameters"):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    if not hasattr(train_loader, "__iter__"):
        raise TypeError(f"fit: train_loader must be iterable, got {type(train_loader).__name__}")
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"fit: optimizer needs step() and zero_grad(), got {type(optimizer).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, numbers.Real)
                                           and clip_grad_norm > 0):
        raise ValueError(f"fit: clip_grad_norm must be a positive number, got {clip_grad_norm!r}")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"fit: scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")


def _check_schedule_length(scheduler: Any, scheduler_step: str, train_loader: Any,
                           start_epoch: int, epochs: int) -> None:
    """A scheduler with a fixed ``total_steps`` (OneCycleLR) raises once stepped past it;
    say so before training rather than part-way through an epoch."""
    total = getattr(scheduler, "total_steps", None)
    if not isinstance(total, numbers.Integral) or epochs <= start_epoch:
        return
    try:
        per_epoch = len(train_loader) if scheduler_step == "batch" else 1
    except TypeError:
        return  # a loader without a length: nothing to check up front
    left = total - int(getattr(scheduler, "last_epoch", 0))
    if (epochs - start_epoch) * per_epoch > left:
        fits = start_epoch + left // max(per_epoch, 1)
        raise ValueError(f"fit: {type(scheduler).__name__} (total_steps={total}) has {left} steps "
                         f"left, not enough for epochs={epochs} ({per_epoch} steps per epoch); its "
                         f"length is fixed, so train at most {fits} epochs with it")


def fit(model: Any, train_loader: Any, optimizer: Any, loss_fn: Optional[Callable] = None,
        epochs: int = 1, val_loader: Any = None, scheduler: Any = None,
        clip_grad_norm: Optional[float] = None, callbacks: Sequence[Callback] = (),
        progress: bool = True, checkpoint: Optional[str] = None, resume: Optional[str] = None,
        scheduler_step: str = "epoch", log: Optional[Callable[[str], None]] = None,
        checkpoint_metadata: Optional[Dict[str, str]] = None) -> List[Dict[str, float]]:
    """Train ``model`` for ``epochs`` epochs; returns one dict of metrics per epoch.

    - ``loss_fn(outputs, targets)`` (default ``nn.CrossEntropyLoss()``).
    - ``scheduler.step()`` runs after every epoch (``scheduler_step='epoch'``) or
      every batch (``'batch'``, e.g. OneCycleLR).
    - ``clip_grad_norm``: max total gradient norm (``nn.utils.clip_grad_norm_``).
    - ``val_loader``: evaluated after each epoch (``val_loss``, ``val_accuracy``, ``val_top5``).
    - ``checkpoint``: a path; a full checkpoint is written there (atomically) after
      every epoch. ``resume``: a checkpoint path to continue from; ``epochs`` is
      then the total, so resuming a 1-epoch checkpoint with epochs=2 trains one more.
    - ``progress``: a tqdm bar on stderr with loss, accuracy and images/s.
    - ``log``: called with one summary line per epoch (default: print unless quiet).
    - ``checkpoint_metadata``: str -> str saved in every checkpoint as
      ``extra['metadata']`` (``pyvision-engine train`` stores the model name, data
      set, channels and input size there for ``eval``/``predict``); kept on resume.
    - A scheduler with a fixed ``total_steps`` (OneCycleLR) must have enough steps
      left for the remaining epochs; this is checked before training starts.
    """
    from pyvision_engine.io import load_checkpoint, save_checkpoint

    _check_fit_args(model, train_loader, optimizer, epochs, clip_grad_norm, scheduler_step)
    loss_fn = loss_fn if loss_fn is not None else _default_loss()
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got {type(cb).__name__}")
    if log is None:
        log = (lambda line: print(line, file=sys.stderr)) if progress else (lambda line: None)
    clip = None
    if clip_grad_norm is not None:
        from pyvision_engine.nn.utils import clip_grad_norm_ as clip  # type: ignore
    state = FitState(model, optimizer, scheduler)
    gens = {"train_loader": g} if (g := _loader_generator(train_loader)) is not None else None
    start_epoch = 0
    if resume is not None:
        ckpt = load_checkpoint(resume, model=model, optimizer=optimizer, scheduler=scheduler,
                               restore_rng=True, generators=gens)
        start_epoch = int(ckpt.get("epoch", 0))
        extra = ckpt.get("extra", {})
        state.history = list(extra.get("history", []))
        for cb, cb_state in zip(callbacks, extra.get("callbacks", [])):
            cb.load_state_dict(cb_state)
        if checkpoint_metadata is None:
            checkpoint_metadata = extra.get("metadata")
        log(f"resumed from {resume} at epoch {start_epoch}")
    if scheduler is not None:
        _check_schedule_length(scheduler, scheduler_step, train_loader, start_epoch, epochs)
    for cb in callbacks:
        cb.on_train_begin(state)
    params = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(start_epoch, epochs):
        state.epoch = epoch
        set_mode(model, True)
        total = None
        try:
            total = len(train_loader)
        except TypeError:
            pass
        seen = correct = 0
        loss_sum = 0.0
        t0 = time.perf_counter()
        bar = _progress(train_loader, total, f"epoch {epoch + 1}/{epochs}", progress)
        for batch in (bar if bar is not None else train_loader):
            inputs, targets = _split_batch(batch)
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
            loss.backward()
            if clip is not None:
                clip(params, float(clip_grad_norm))
            optimizer.step()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            n = _batch_size(inputs)
            loss_value = float(loss.item())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"fit: loss became {loss_value} at epoch {epoch + 1}; "
                                         "lower the learning rate or clip gradients")
            loss_sum += loss_value * n
            seen += n
            logits = _logits_array(outputs)
            t = _targets_array(targets)
            if logits.ndim == 2 and t.ndim == 1 and t.dtype.kind in "iu":
                correct += int((np.argmax(logits, axis=1) == t).sum())
            if bar is not None:
                elapsed = max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}",
                                img_s=f"{seen / elapsed:.0f}", refresh=False)
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
        logs: Dict[str, float] = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
                                  "accuracy": correct / max(seen, 1), "time_s": elapsed,
                                  "images_per_s": seen / max(elapsed, 1e-9)}
        lr = _current_lr(optimizer)
        if lr is not None:
            logs["lr"] = lr
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn=loss_fn)
            logs.update({"val_loss": val["loss"], "val_accuracy": val["accuracy"],
                         "val_top5": val["top5"]})
        state.history.append(logs)
        for cb in callbacks:
            cb.on_epoch_end(state, epoch, logs)
        log(_summary(logs, epochs))
        if checkpoint is not None:
            ckpt_extra = {"history": state.history, "callbacks": [cb.state_dict() for cb in callbacks]}
            if checkpoint_metadata:
                ckpt_extra["metadata"] = dict(checkpoint_metadata)
            save_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
                            epoch=epoch + 1, metrics=logs, generators=gens, extra=ckpt_extra)
        if state.stop_training:
            log(f"early stopping after epoch {epoch + 1}")
            break
    for cb in callbacks:
        cb.on_train_end(state)
    return state.history


def _summary(logs: Dict[str, float], epochs: int) -> str:
    parts = [f"epoch {int(logs['epoch'])}/{epochs}", f"loss {logs['loss']:.4f}",
             f"acc {logs['accuracy'] * 100:.2f}%"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy'] * 100:.2f}%"]
    parts += [f"{logs['images_per_s']:.0f} img/s", f"{logs['time_s']:.1f} s"]
    return "  ".join(parts)


def evaluate(model: Any, loader: Any, loss_fn: Optional[Callable] = None,
             num_classes: Optional[int] = None, progress: bool = False) -> Dict[str, Any]:
    """Evaluate in eval mode without gradients.

    Returns ``{'loss', 'accuracy' (top-1), 'top5', 'confusion_matrix' (true x predicted,
    int64), 'n'}``; ``loss`` is None without ``loss_fn``. The model's train/eval
    mode is restored afterwards."""
    if not callable(model):
        raise TypeError(f"evaluate: model must be callable, got {type(model).__name__}")
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"evaluate: loader must be iterable, got {type(loader).__name__}")
    was_training = getattr(model, "training", False)
    if was_training:  # already in eval mode: keep the layers' inference caches
        set_mode(model, False)
    n = top1 = top5 = 0
    loss_sum = 0.0
    preds: List[np.ndarray] = []
    trues: List[np.ndarray] = []
    classes = num_classes
    try:
        with no_grad():
            bar = _progress(loader, None, "eval", progress)
            for batch in (bar if bar is not None else loader):
                inputs, targets = _split_batch(batch)
                outputs = model(inputs)
                logits = _logits_array(outputs)
                t = _targets_array(targets).reshape(-1).astype(np.int64)
                if logits.ndim != 2 or logits.shape[0] != t.shape[0]:
                    raise ValueError(f"evaluate: expected (N, classes) outputs for {t.shape[0]} "
                                     f"targets, got shape {logits.shape}")
                if loss_fn is not None:
                    loss_sum += float(loss_fn(outputs, targets).item()) * t.shape[0]
                c1, c5 = topk_correct(logits, t, (1, 5))
                top1 += c1
                top5 += c5
                n += t.shape[0]
                classes = classes or logits.shape[1]
                preds.append(np.argmax(logits, axis=1))
                trues.append(t)
            if bar is not None:
                bar.close()
    finally:
        if was_training:
            set_mode(model, True)
    classes = classes or 0
    cm = confusion_matrix(np.concatenate(preds) if preds else np.zeros(0, np.int64),
                          np.concatenate(trues) if trues else np.zeros(0, np.int64), classes)
    return {"loss": loss_sum / n if (loss_fn is not None and n) else None,
            "accuracy": top1 / n if n else 0.0, "top5": top5 / n if n else 0.0,
            "confusion_matrix": cm, "n": n}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z, dtype=np.float64)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def predict(model: Any, inputs: Any, batch_size: int = 256, topk: Optional[int] = None
            ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Class probabilities (softmax of the model's outputs) for ``inputs``.

    ``inputs``: an (N, ...) array or Tensor (run in batches of ``batch_size``), or an
    iterable of batches (a DataLoader; the first element of a tuple batch is the
    input). Returns (N, classes) float32 probabilities, or with ``topk`` the
    pair (probabilities (N, k), class indices (N, k)), best first."""
    if not callable(model):
        raise TypeError(f"predict: model must be callable, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive int, got {batch_size!r}")
    if topk is not None and (not isinstance(topk, numbers.Integral) or topk < 1):
        raise ValueError(f"predict: topk must be a positive int, got {topk!r}")
    was_training = getattr(model, "training", False)
    if was_training:  # already in eval mode: keep the layers' inference caches
        set_mode(model, False)
    chunks: List[np.ndarray] = []
    try:
        with no_grad():
            if isinstance(inputs, (Tensor, np.ndarray)) or (hasattr(inputs, "shape")
                                                            and hasattr(inputs, "numpy")):
                x = as_tensor(inputs)
                if x.ndim == 0:
                    raise ValueError("predict: inputs need a batch dimension")
                for start in range(0, x.shape[0], batch_size):
                    chunks.append(_softmax(_logits_array(model(x[start:start + batch_size]))))
            else:
                for batch in inputs:
                    xb = batch[0] if isinstance(batch, (tuple, list)) else batch
                    chunks.append(_softmax(_logits_array(model(xb))))
    finally:
        if was_training:
            set_mode(model, True)
    if not chunks:
        raise ValueError("predict: no inputs")
    probs = np.concatenate(chunks)
    if probs.ndim != 2:
        raise ValueError(f"predict: expected (N, classes) model outputs, got shape {probs.shape}")
    if topk is None:
        return probs
    k = min(int(topk), probs.shape[1])
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(probs, idx, axis=1), idx
