"""The ``pyvision-engine`` command (also ``python -m pyvision_engine``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional


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
    from pyvision_engine.benchmarks import run_benchmark

    return run_benchmark(args.name, args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyvision-engine",
                                     description="A small, fast CPU engine for CNNs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="SIMD level, threads and kernels in use")
    p_info.add_argument("--json", action="store_true", help="print as JSON")
    p_info.set_defaults(func=_cmd_info)
    p_bench = sub.add_parser("bench", help="side-by-side benchmarks against numpy/torch")
    p_bench.add_argument("name", nargs="?", default="gemm", help="which benchmark (default: gemm)")
    p_bench.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    p_bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"pyvision-engine {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
