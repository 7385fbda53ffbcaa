"""Inference latency and throughput: pve vs torch vs onnxruntime, same weights, one process.

    python bench/bench_infer.py [--threads 1 2] [--only resnet18] [--batches 1 16] [--repeats 10]

Cases (issue 6): ResNet-18, ResNet-50 and MobileNetV2 at 3x224x224, batch 1 and 16, eval mode.
pve runs under ``pve.no_grad()``; torch under ``torch.inference_mode()``;
onnxruntime runs the model exported from torch with ``torch.onnx.export`` (needs
the ``onnx`` and ``onnxruntime`` packages; skipped with a note otherwise), with
intra_op_num_threads set to the thread count; ``pve.onnx.InferenceSession`` runs
that same file (column "pve.onnx"). Reported: median latency in ms
over ``--repeats`` runs after 2 warm-up runs (the engines alternate run by run), images/s, and the speed-ups of pve
over torch and over onnxruntime (> 1 means pve is faster).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import pyvision_engine as pve
from pyvision_engine.benchmarks.train import PROBE_NOTE, measured_row, paired_medians, paired_models

MODELS = ("resnet18", "resnet50", "mobilenet_v2")


def _onnx_session(torch_model: Any, batch: int, threads: int) -> Any:
    """(onnxruntime session, the model's bytes) of the torch model, or a string saying
    why there is none."""
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
        import torch
    except ImportError as e:
        return f"skipped ({e.name} not installed)"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        try:
            torch.onnx.export(torch_model, torch.zeros(batch, 3, 224, 224), path, input_names=["input"],
                              output_names=["logits"], opset_version=17, dynamo=False)
        except TypeError:  # older torch without the dynamo argument
            torch.onnx.export(torch_model, torch.zeros(batch, 3, 224, 224), path, input_names=["input"],
                              output_names=["logits"], opset_version=17)
        except Exception as e:  # exporter problems must not stop the other columns
            return f"skipped (export failed: {type(e).__name__})"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        with open(path, "rb") as f:
            data = f.read()
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"]), data


def run(threads: Sequence[int], only: Optional[Sequence[str]], batches: Sequence[int], repeats: int,
        with_torch: bool = True, with_ort: bool = True) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    notes = set()
    for name in MODELS:
        if only and name not in only:
            continue
        mine, theirs = paired_models(name, num_classes=1000)
        mine.eval()
        if theirs is not None:
            theirs.eval()
        if not with_torch:
            theirs = None
        rng = np.random.default_rng(0)
        for batch in batches:
            x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            xt = pve.tensor(x)

            def run_pve() -> Any:
                with pve.no_grad():
                    return mine(xt)

            if theirs is not None:
                import torch

                x_torch = torch.from_numpy(x)

                def run_torch() -> Any:
                    with torch.inference_mode():
                        return theirs(x_torch)
            for n in threads:
                pve.set_num_threads(n)
                run_t = run_ort = run_pve_onnx = None
                if theirs is not None:
                    import torch

                    torch.set_num_threads(n)
                    run_t = run_torch
                    if with_ort:
                        session = _onnx_session(theirs, batch, n)
                        if isinstance(session, str):
                            notes.add(f"onnxruntime {session}")
                        else:
                            feed = {"input": x}
                            session, data = session
                            run_ort = (lambda s=session, f=feed: s.run(None, f))
                            mine_onnx = pve.onnx.InferenceSession(data)
                            run_pve_onnx = (lambda s=mine_onnx, f=feed: s.run(None, f))
                fns = [run_pve, run_t, run_ort, run_pve_onnx]
                (t_pve, t_torch, t_ort, t_pve_onnx), probe = measured_row(
                    lambda: paired_medians(fns, repeats), n)
                row: Dict[str, Any] = {"model": name, "batch": batch, "threads": n,
                                       "pve": t_pve, "torch": t_torch, "ort": t_ort,
                                       "pve_onnx": t_pve_onnx, "probe": probe}
                rows.append(row)
    for note in sorted(notes):
        print(note)
    return rows


def format_table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| model | batch | threads | pve ms | torch ms | onnxruntime ms | pve img/s | torch img/s | "
             "ort img/s | vs torch | vs ort | pve.onnx ms | pve.onnx vs ort | FMA GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(t: Optional[float]) -> str:
        return f"{t * 1e3:.1f}" if t else "n/a"

    def ips(t: Optional[float], b: int) -> str:
        return f"{b / t:.1f}" if t else "n/a"

    for r in rows:
        b = r["batch"]
        lines.append(" | ".join([
            f"| {r['model']}", str(b), str(r["threads"]), ms(r["pve"]), ms(r["torch"]), ms(r["ort"]),
            ips(r["pve"], b), ips(r["torch"], b), ips(r["ort"], b),
            f"{r['torch'] / r['pve']:.2f}x" if r["torch"] else "n/a",
            f"{r['ort'] / r['pve']:.2f}x" if r["ort"] else "n/a",
            ms(r.get("pve_onnx")),
            f"{r['ort'] / r['pve_onnx']:.2f}x" if r["ort"] and r.get("pve_onnx") else "n/a",
            f"{r['probe']:.0f} |"]))
    return "\n".join(lines) + "\n\n" + PROBE_NOTE


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=None, help=f"models among {', '.join(MODELS)}")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-ort", action="store_true")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: pve column only (and no onnxruntime model to export)")
    rows = run(args.threads, args.only, args.batches, args.repeats, not args.no_torch, not args.no_ort)
    print(f"inference at 3x224x224, ISA {pve.info()['isa']}, median of {args.repeats} runs")
    print(format_table(rows))
    return 0
