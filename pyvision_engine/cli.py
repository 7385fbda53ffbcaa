"""The ``pyvision-engine`` command (also ``python -m pyvision_engine``).

    pyvision-engine train                       # small CNN on the built-in digits, Adam
    pyvision-engine train --dataset mnist DIR --model lenet5 --epochs 5 --out lenet.safetensors
    pyvision-engine eval --weights lenet.safetensors --dataset mnist DIR
    pyvision-engine predict --weights lenet.safetensors digit.png more.npy
    pyvision-engine bench [train|infer|gemm] ...
    pyvision-engine info

Errors (a missing directory, an unknown model or optimizer, a corrupt checkpoint)
are printed as one line and exit with status 2; ``PVE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

OPTIMIZERS = ("sgd", "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta",
              "rprop", "asgd", "adafactor")
# (rprop: its initial per-weight step size; asgd: SGD's rate, it is SGD plus averaging)
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "adamax": 2e-3, "nadam": 2e-3,
              "radam": 2e-3, "rmsprop": 1e-3, "adagrad": 1e-2, "adadelta": 1.0, "rprop": 1e-3,
              "asgd": 0.05, "adafactor": 1e-2}
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder")
SCHEDULERS = ("none", "cosine", "step", "onecycle")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# ------------------------------------------------------------------- info
def _cmd_info(args: argparse.Namespace) -> int:
    import pyvision_engine as pve

    info = pve.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"pyvision_engine {info['version']}")
    print(f"  isa:            {info['isa']} (supported: {', '.join(info['supported_isas'])})")
    print(f"  threads:        {info['num_threads']} ({info['openmp']})")
    flags = [k for k, v in info["cpu_features"].items() if v]
    print(f"  cpu features:   {' '.join(flags)}")
    for name, isas in info["kernels"].items():
        print(f"  kernel {name:<12} {', '.join(isas)}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from pyvision_engine.benchmarks import OPENMP_ENV, run_benchmark

    wanted = OPENMP_ENV.get(args.name, {})
    if wanted and not any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        # libgomp reads these when it loads (already done): start again with them set.
        env = dict(os.environ, **wanted)
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "pyvision_engine", "bench", args.name,
                                   *args.rest], env)

    return run_benchmark(args.name, args.rest)


# ------------------------------------------------------------------- data
class DataSpec:
    """A dataset choice resolved to train/test datasets and the preprocessing they need."""

    def __init__(self, name: str, root: Optional[str], image_size: Optional[int]) -> None:
        self.name, self.root, self.image_size = name, root, image_size
        self.mean: Tuple[float, ...] = ()
        self.std: Tuple[float, ...] = ()
        self.classes: List[str] = []
        self.channels = 1
        self.size = 0  # square input size


def _parse_dataset(values: Optional[List[str]]) -> Tuple[str, Optional[str]]:
    if not values:
        return "digits", None
    name = values[0].lower()
    if name not in DATASETS:
        raise CLIError(f"unknown dataset '{values[0]}'; choose from: {', '.join(DATASETS)}")
    if len(values) > 2:
        raise CLIError(f"--dataset takes a name and at most one directory, got {values}")
    root = values[1] if len(values) == 2 else None
    if name == "digits":
        if root is not None:
            raise CLIError("--dataset digits is built in and takes no directory")
        return name, None
    if root is None:
        raise CLIError(f"--dataset {name} needs a directory: --dataset {name} DIR")
    if not os.path.isdir(root):
        raise CLIError(f"dataset directory not found: {root}")
    return name, root


def _datasets(spec: DataSpec, augment: bool) -> Tuple[Any, Any]:
    """(train dataset, test dataset) with batch-level (Cython) preprocessing where possible."""
    from pyvision_engine.data import datasets as D
    from pyvision_engine.data import random_split
    from pyvision_engine.data import transforms as T

    name = spec.name
    if name == "imagefolder":
        size = spec.image_size or 224
        spec.mean, spec.std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        spec.channels, spec.size = 3, size
        train_tf = T.Compose([T.Resize(size), T.CenterCrop(size)] +
                             ([T.RandomHorizontalFlip()] if augment else []) +
                             [T.ToTensor(), T.Normalize(spec.mean, spec.std)])
        full = D.ImageFolder(spec.root, transform=train_tf)
        spec.classes = full.classes
        n_test = max(1, len(full) // 10)
        return tuple(random_split(full, [len(full) - n_test, n_test], generator=0))  # type: ignore
    if name == "digits":
        cls, kwargs = D.Digits, {}
        spec.mean, spec.std, spec.channels, spec.size = D.Digits.MEAN, D.Digits.STD, 1, 8
        crop = dict(crop_size=8, padding=1)
    elif name in ("mnist", "fashion-mnist"):
        cls = D.MNIST if name == "mnist" else D.FashionMNIST
        kwargs = {"root": spec.root}
        spec.mean, spec.std = ((0.1307,), (0.3081,)) if name == "mnist" else ((0.2860,), (0.3530,))
        spec.channels, spec.size = 1, 28
        crop = dict(crop_size=28, padding=2)
    else:
        cls = D.CIFAR10 if name == "cifar10" else D.CIFAR100
        kwargs = {"root": spec.root}
        spec.mean, spec.std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
        spec.channels, spec.size = 3, 32
        crop = dict(crop_size=32, padding=4, flip_p=0.5)
    train_aug = T.BatchAugment(spec.mean, spec.std, **crop) if augment else \
        T.BatchAugment(spec.mean, spec.std)
    train = cls(train=True, transform=train_aug, **kwargs)
    test = cls(train=False, transform=T.BatchAugment(spec.mean, spec.std), **kwargs)
    spec.classes = list(train.classes)
    return train, test


# ------------------------------------------------------------------ models
def _build_model(name: str, spec: DataSpec, num_classes: int) -> Any:
    from pyvision_engine import models

    key = name.lower().replace("-", "_")
    if key not in models.MODELS:
        raise CLIError(f"unknown model '{name}'; choose from: {', '.join(models.list_models())}")
    shape = models.INPUT_SHAPES[key]
    kwargs: Dict[str, Any] = {"num_classes": num_classes}
    if key in ("small_cnn", "lenet5", "resnet20"):
        kwargs["in_channels"] = spec.channels
    if key == "lenet5":
        if spec.size not in (28, 32):
            raise CLIError(f"lenet5 needs 28x28 or 32x32 images; {spec.name} has {spec.size}x{spec.size}")
        kwargs["input_size"] = spec.size
    elif shape is not None and shape[0] != spec.channels and key not in ("resnet20",):
        raise CLIError(f"{key} expects {shape[0]}-channel images; {spec.name} has {spec.channels}")
    return models.get_model(key, **kwargs)


def _build_optimizer(args: argparse.Namespace, params: List[Any]) -> Any:
    from pyvision_engine import optim

    name = args.optimizer.lower()
    if name not in OPTIMIZERS:
        raise CLIError(f"unknown optimizer '{args.optimizer}'; choose from: {', '.join(OPTIMIZERS)}")
    lr = args.lr if args.lr is not None else DEFAULT_LR[name]
    classes = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "NAdam",
               "radam": "RAdam", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta",
               "rprop": "Rprop", "asgd": "ASGD", "adafactor": "Adafactor"}
    kwargs: Dict[str, Any] = {"lr": lr}
    if args.weight_decay and name == "rprop":
        raise CLIError("--weight-decay: rprop has no weight decay (torch.optim.Rprop takes none)")
    if args.weight_decay:
        kwargs["weight_decay"] = args.weight_decay
    if name == "sgd":
        kwargs.update(momentum=args.momentum, nesterov=args.momentum > 0)
    elif name == "rmsprop" and args.momentum:
        kwargs["momentum"] = args.momentum
    opt = getattr(optim, classes[name])(params, **kwargs)
    if args.lookahead:
        opt = optim.Lookahead(opt, k=args.lookahead_k, alpha=args.lookahead_alpha)
    return opt


def _build_scheduler(name: str, optimizer: Any, epochs: int, steps_per_epoch: int
                     ) -> Tuple[Any, str]:
    from pyvision_engine.optim import lr_scheduler

    if name == "none":
        return None, "epoch"
    inner = getattr(optimizer, "optimizer", optimizer)  # Lookahead wraps the real optimizer
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(inner, T_max=max(epochs * steps_per_epoch, 1)), "batch"
    if name == "step":
        return lr_scheduler.StepLR(inner, step_size=max(epochs // 3, 1), gamma=0.1), "epoch"
    max_lr = inner.param_groups[0]["lr"]
    # OneCycleLR cycles momentum (or beta1) by default and refuses optimizers
    # that have neither (Adagrad, Adadelta, Rprop, ASGD): those keep the lr cycle only.
    group = inner.param_groups[0]
    cycle = "betas" in group or "momentum" in group
    return lr_scheduler.OneCycleLR(inner, max_lr=max_lr, total_steps=max(epochs * steps_per_epoch, 1),
                                   cycle_momentum=cycle), "batch"


def _weights_metadata(model_name: str, spec: DataSpec) -> Dict[str, str]:
    return {"pve_model": model_name, "pve_dataset": spec.name, "pve_classes": json.dumps(spec.classes),
            "pve_channels": str(spec.channels), "pve_size": str(spec.size),
            "pve_mean": json.dumps(list(spec.mean)), "pve_std": json.dumps(list(spec.std))}


# ------------------------------------------------------------------- train
def _cmd_train(args: argparse.Namespace) -> int:
    import pyvision_engine as pve
    from pyvision_engine.data import DataLoader
    from pyvision_engine.train import ModelCheckpoint, fit

    if args.epochs < 1:
        raise CLIError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.optimizer.lower() not in OPTIMIZERS:
        raise CLIError(f"unknown optimizer '{args.optimizer}'; choose from: {', '.join(OPTIMIZERS)}")
    if args.resume is not None:
        if not os.path.isfile(args.resume):
            raise CLIError(f"checkpoint not found: {args.resume}")
        from pyvision_engine.io import load

        load(args.resume)  # a damaged checkpoint fails here, before any data is loaded
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be at least 1, got {args.threads}")
        pve.set_num_threads(args.threads)
    name, root = _parse_dataset(args.dataset)
    spec = DataSpec(name, root, args.image_size)
    from pyvision_engine import models as _models  # validates the name before loading data

    if args.model.lower().replace("-", "_") not in _models.MODELS:
        raise CLIError(f"unknown model '{args.model}'; choose from: {', '.join(_models.list_models())}")
    pve.manual_seed(args.seed)
    t_load = time.perf_counter()
    train_set, test_set = _datasets(spec, augment=not args.no_augment)
    num_classes = len(spec.classes)
    model = _build_model(args.model, spec, num_classes)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              num_workers=args.workers, generator=args.seed,
                              prefetch_factor=None if args.workers else 2, drop_last=False)
    test_loader = DataLoader(test_set, batch_size=max(args.batch_size, 256), num_workers=args.workers,
                             prefetch_factor=None if args.workers else 2)
    optimizer = _build_optimizer(args, list(model.parameters()))
    scheduler, scheduler_step = _build_scheduler(args.scheduler, optimizer, args.epochs, len(train_loader))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.model} ({n_params:,} parameters) on {spec.name}: {len(train_set)} train / "
          f"{len(test_set)} test images, {spec.channels}x{spec.size}x{spec.size}, {num_classes} classes; "
          f"{type(optimizer).__name__} lr {args.lr if args.lr is not None else DEFAULT_LR[args.optimizer.lower()]:g}"
          f"{' (' + args.scheduler + ' schedule)' if args.scheduler != 'none' else ''}; "
          f"{pve.get_num_threads()} threads; data ready in {time.perf_counter() - t_load:.1f} s",
          flush=True)
    callbacks = []
    if args.out:
        best = os.path.splitext(args.out)[0] + ".best.safetensors" if args.save_best else None
        if best:
            callbacks.append(ModelCheckpoint(best, monitor="val_accuracy"))
    t0 = time.perf_counter()
    history = fit(model, train_loader, optimizer, pve.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
                  epochs=args.epochs, val_loader=test_loader, scheduler=scheduler,
                  scheduler_step=scheduler_step, clip_grad_norm=args.clip_grad_norm,
                  callbacks=callbacks, progress=not args.quiet, checkpoint=args.checkpoint,
                  resume=args.resume, log=print,
                  # what eval/predict need to rebuild the model, as in `--out` weights
                  checkpoint_metadata=_weights_metadata(args.model, spec))
    elapsed = time.perf_counter() - t0
    if not history:
        print(f"nothing to do: the checkpoint already covers {args.epochs} epochs")
        return 0
    last = history[-1]
    images = sum(h["images_per_s"] * h["time_s"] for h in history)
    train_time = sum(h["time_s"] for h in history)
    print(f"test accuracy {last['val_accuracy'] * 100:.2f}% (top-5 {last['val_top5'] * 100:.2f}%), "
          f"train accuracy {last['accuracy'] * 100:.2f}%; {len(history)} epochs in {elapsed:.1f} s, "
          f"{images / max(train_time, 1e-9):.0f} train images/s")
    if args.out:
        pve.save(model.state_dict(), args.out, metadata=_weights_metadata(args.model, spec))
        print(f"weights saved to {args.out}")
    return 0


# ------------------------------------------------------- eval and predict
def _few(keys: List[str], limit: int = 5) -> str:
    """The first ``limit`` keys and how many more: a one-line error stays readable."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _state_mismatch(model: Any, state: Dict[str, Any]) -> Optional[str]:
    """Why ``state`` does not load into ``model``, in one short line (None if it does)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_few(unexpected)}")
    if not parts:
        found = {k: tuple(getattr(state[k], "shape", ())) for k in expected}
        shapes = [f"{k} {found[k]} vs {tuple(v.shape)}" for k, v in expected.items()
                  if found[k] != tuple(v.shape)]
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}, file vs model): {_few(shapes, 3)}")
    return "; ".join(parts) or None


def _load_trained(weights: str, model_name: Optional[str]) -> Tuple[Any, Dict[str, Any]]:
    """Model + preprocessing info from a weights file written by ``train --out`` (or a checkpoint)."""
    import pyvision_engine as pve
    from pyvision_engine.io import read_metadata

    if not os.path.isfile(weights):
        raise CLIError(f"weights file not found: {weights}")
    meta = read_metadata(weights)
    loaded = pve.load(weights)
    if isinstance(loaded, dict) and loaded.get("format") == "pyvision_engine.checkpoint":
        state = loaded["model"]
        meta = {**meta, **(loaded.get("extra") or {}).get("metadata", {})}
    else:
        state = loaded
    name = model_name or meta.get("pve_model")
    if not name:
        raise CLIError(f"{weights} does not say which model it holds; pass --model")
    info = {
        "classes": json.loads(meta["pve_classes"]) if "pve_classes" in meta else None,
        "channels": int(meta.get("pve_channels", 3)), "size": int(meta.get("pve_size", 224)),
        "mean": tuple(json.loads(meta["pve_mean"])) if "pve_mean" in meta else (0.485, 0.456, 0.406),
        "std": tuple(json.loads(meta["pve_std"])) if "pve_std" in meta else (0.229, 0.224, 0.225),
        "dataset": meta.get("pve_dataset"),
    }
    fc = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    num_classes = fc[-1].shape[0] if fc else (len(info["classes"]) if info["classes"] else 1000)
    spec = DataSpec(info["dataset"] or "custom", None, None)
    spec.channels, spec.size = info["channels"], info["size"]
    model = _build_model(name, spec, num_classes)
    problem = _state_mismatch(model, state)
    if problem is None:
        try:
            model.load_state_dict(state)
        except (RuntimeError, ValueError) as e:
            problem = str(e).splitlines()[-1].strip()
    if problem is not None:
        if "pve_channels" not in meta:
            problem += (f" (the file does not record its input; {info['channels']}x{info['size']}"
                        f"x{info['size']} was assumed)")
        raise CLIError(f"{weights} does not fit model {name}: {problem}")
    model.eval()
    return model, info


def _cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    import pyvision_engine as pve
    from pyvision_engine.data import DataLoader
    from pyvision_engine.train import evaluate

    if args.threads:
        pve.set_num_threads(args.threads)
    model, info = _load_trained(args.weights, args.model)
    trained_on = info["dataset"]
    if args.dataset is None and trained_on not in (None, "digits"):
        # the built-in digits would not fit these weights: ask instead of guessing
        raise CLIError(f"these weights were trained on {trained_on}; pass --dataset {trained_on} DIR")
    name, root = _parse_dataset(args.dataset)
    spec = DataSpec(name, root, info["size"] if name == "imagefolder" else None)
    _, test_set = _datasets(spec, augment=False)
    loader = DataLoader(test_set, batch_size=args.batch_size, prefetch_factor=2)
    t0 = time.perf_counter()
    result = evaluate(model, loader, loss_fn=pve.nn.CrossEntropyLoss(), progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    print(f"{spec.name} test set: {result['n']} images, top-1 {result['accuracy'] * 100:.2f}%, "
          f"top-5 {result['top5'] * 100:.2f}%, loss {result['loss']:.4f}, "
          f"{result['n'] / max(elapsed, 1e-9):.0f} images/s")
    cm = result["confusion_matrix"]
    if cm.shape[0] <= 20:
        print("confusion matrix (rows: true class, columns: predicted):")
        width = max(4, len(str(cm.max())) + 1)
        for i, row in enumerate(cm):
            print(f"  {i:>3} " + "".join(f"{v:>{width}d}" for v in row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}, f)
    return 0


def _read_inputs(paths: List[str], info: Dict[str, Any]) -> Tuple[Any, List[str]]:
    """Images (Pillow) or .npy arrays -> one normalized (N, C, H, W) float32 batch + labels."""
    import numpy as np

    from pyvision_engine.data import transforms as T

    c, size = info["channels"], info["size"]
    norm = T.BatchAugment(info["mean"][:c] if len(info["mean"]) >= c else info["mean"],
                          info["std"][:c] if len(info["std"]) >= c else info["std"])
    batches, labels = [], []
    for path in paths:
        if not os.path.isfile(path):
            raise CLIError(f"input file not found: {path}")
        if path.lower().endswith(".npy"):
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as e:
                raise CLIError(f"{path}: not a numeric .npy array ({e})") from None
            if arr.dtype == np.uint8:
                if arr.ndim == 2:
                    arr = arr[None, ..., None]
                elif arr.ndim == 3:  # (N, H, W) gray images, or one (H, W, C) color image
                    arr = arr[..., None] if c == 1 else arr[None]
                if arr.ndim != 4 or arr.shape[-1] != c:
                    raise CLIError(f"{path}: expected uint8 images (N, H, W, {c}) or (H, W), got {arr.shape}")
                x = norm(_resize_batch(arr, size)).numpy()
            else:
                x = np.asarray(arr, dtype=np.float32)
                if x.ndim == 3:
                    x = x[None]
                if x.ndim != 4 or x.shape[1] != c:
                    raise CLIError(f"{path}: expected float input (N, {c}, H, W) already normalized, "
                                   f"got {arr.shape}")
            batches.append(x)
            labels += [f"{path}[{i}]" for i in range(x.shape[0])] if x.shape[0] > 1 else [path]
        else:
            from pyvision_engine.data.datasets import _pil_image

            Image = _pil_image()
            try:
                with Image.open(path) as img:
                    img = img.convert("L" if c == 1 else "RGB")
                    arr = np.asarray(img, dtype=np.uint8)
            except OSError as e:
                raise CLIError(f"{path}: cannot read image: {e}") from None
            if c == 1:
                arr = arr[..., None]
                if info.get("dataset") in ("digits", "mnist", "fashion-mnist") and arr.mean() > 127:
                    arr = 255 - arr  # dark ink on light paper -> the data sets' light-on-dark
            batches.append(norm(_resize_batch(arr[None], size)).numpy())
            labels.append(path)
    return np.concatenate(batches), labels


def _resize_batch(arr: Any, size: int) -> Any:
    import numpy as np

    from pyvision_engine.data.transforms import resize_bilinear

    if arr.shape[1] == size and arr.shape[2] == size:
        return arr
    return np.stack([resize_bilinear(a, size, size) for a in arr])


def _cmd_predict(args: argparse.Namespace) -> int:
    import pyvision_engine as pve
    from pyvision_engine.train import predict

    if args.threads:
        pve.set_num_threads(args.threads)
    if args.topk < 1:
        raise CLIError(f"--topk must be at least 1, got {args.topk}")
    model, info = _load_trained(args.weights, args.model)
    x, labels = _read_inputs(args.inputs, info)
    probs, idx = predict(model, x, topk=args.topk)
    classes = info["classes"]
    for label, p_row, i_row in zip(labels, probs, idx):
        parts = [f"{classes[i] if classes and i < len(classes) else i} ({p:.3f})"
                 for p, i in zip(p_row, i_row)]
        print(f"{label}: " + ", ".join(parts))
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyvision-engine",
                                     description="A small, fast CPU engine for CNNs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser("train", help="train a model (default: a small CNN on the built-in digits)")
    p_train.add_argument("--model", default="small_cnn", help="small_cnn (default), lenet5, resnet20, "
                         "resnet18, resnet34, resnet50, mobilenet_v2")
    p_train.add_argument("--dataset", nargs="+", metavar="NAME [DIR]",
                         help="digits (built in, default) | mnist DIR | fashion-mnist DIR | cifar10 DIR | "
                              "cifar100 DIR | imagefolder DIR")
    p_train.add_argument("--optimizer", default="adam", help=f"one of {', '.join(OPTIMIZERS)} (default adam)")
    p_train.add_argument("--lookahead", action="store_true", help="wrap the optimizer in Lookahead")
    p_train.add_argument("--lookahead-k", type=int, default=5)
    p_train.add_argument("--lookahead-alpha", type=float, default=0.5)
    p_train.add_argument("--lr", type=float, default=None, help="learning rate (default per optimizer)")
    p_train.add_argument("--momentum", type=float, default=0.9, help="for sgd and rmsprop (default 0.9)")
    p_train.add_argument("--weight-decay", type=float, default=0.0)
    p_train.add_argument("--scheduler", choices=SCHEDULERS, default="onecycle",
                         help="learning-rate schedule (default onecycle)")
    p_train.add_argument("--label-smoothing", type=float, default=0.0)
    p_train.add_argument("--clip-grad-norm", type=float, default=None)
    p_train.add_argument("--batch-size", type=int, default=64)
    p_train.add_argument("--epochs", type=int, default=12)
    p_train.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    p_train.add_argument("--workers", type=int, default=0, help="data loader threads (default: one "
                         "prefetch thread)")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--image-size", type=int, default=None, help="imagefolder input size (224)")
    p_train.add_argument("--no-augment", action="store_true", help="no random crop/flip")
    p_train.add_argument("--checkpoint", default=None, help="write a full checkpoint here after every epoch")
    p_train.add_argument("--resume", default=None, help="continue from this checkpoint")
    p_train.add_argument("--out", default=None, help="save the final weights (.safetensors)")
    p_train.add_argument("--save-best", action="store_true", help="also keep the best epoch's weights")
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")
    p_train.set_defaults(func=_cmd_train)

    p_eval = sub.add_parser("eval", help="accuracy and confusion matrix of trained weights")
    p_eval.add_argument("--weights", required=True, help="weights from `train --out` (or a checkpoint)")
    p_eval.add_argument("--model", default=None, help="model name (default: read from the weights file)")
    p_eval.add_argument("--dataset", nargs="+", metavar="NAME [DIR]", default=None)
    p_eval.add_argument("--batch-size", type=int, default=256)
    p_eval.add_argument("--threads", type=int, default=None)
    p_eval.add_argument("--json", default=None, help="also write the results to this JSON file")
    p_eval.add_argument("--quiet", action="store_true")
    p_eval.set_defaults(func=_cmd_eval)

    p_pred = sub.add_parser("predict", help="top-k classes for image files or .npy arrays")
    p_pred.add_argument("inputs", nargs="+", help="PNG/JPEG files or .npy arrays")
    p_pred.add_argument("--weights", required=True)
    p_pred.add_argument("--model", default=None)
    p_pred.add_argument("--topk", type=int, default=3)
    p_pred.add_argument("--threads", type=int, default=None)
    p_pred.set_defaults(func=_cmd_predict)

    p_bench = sub.add_parser("bench", help="side-by-side benchmarks against numpy/torch/onnxruntime")
    p_bench.add_argument("name", nargs="?", default="gemm", help="which benchmark (default: gemm)")
    p_bench.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    p_bench.set_defaults(func=_cmd_bench)

    p_info = sub.add_parser("info", help="SIMD level, threads and kernels in use")
    p_info.add_argument("--json", action="store_true", help="print as JSON")
    p_info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"pyvision-engine {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user, never a traceback (PVE_DEBUG=1 shows it)
        if os.environ.get("PVE_DEBUG"):
            raise
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"pyvision-engine {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
