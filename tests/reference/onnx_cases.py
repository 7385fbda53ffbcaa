"""onnx's backend node cases (``onnx.backend.test.case.node``) as the pve.onnx tests read
them: the cases pve.onnx can run, their values as numpy holds them, and the nodes of a
graph with those of its subgraphs. Collected once per process (test_session.py runs
them; other test files pick theirs from the same list)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
from onnx import AttributeProto, TensorProto, numpy_helper

from pyvision_engine.onnx import _ops, _proto, supported_ops


def all_nodes(graph):
    """The graph's nodes and those of its subgraphs (If branches, Loop bodies, ...)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from all_nodes(attr.g)


def tensors(values):
    """The tensors among a case's values: a sequence (list) gives its elements, an empty
    optional (None) nothing."""
    for v in values:
        if isinstance(v, list):
            yield from tensors(v)
        elif v is not None:
            yield v


def case_array(a):
    """A node case's input or output as numpy holds it: 0-d values as arrays, and the
    TensorProto form some cases use (Cast's, to carry float16 or float8 bits) converted."""
    if isinstance(a, np.generic):
        return np.asarray(a)
    if isinstance(a, TensorProto):
        return numpy_helper.to_array(a)
    return a


@functools.lru_cache(maxsize=None)
def runnable_node_cases():
    """Every node case whose operators pve.onnx runs (ai.onnx ones, or of another domain
    it registers) and whose tensors are of types it reads, as a tuple."""
    import onnx.backend.test.case.node as node_cases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases(None)
    supported = set(supported_ops())
    dtypes = set(_proto.DTYPES.values())

    def runs(node):
        if node.domain in ("", "ai.onnx"):
            return node.op_type in supported
        return node.op_type in _ops.DOMAIN_OPS.get(node.domain, {})

    chosen = []
    for case in cases:
        if not all(runs(n) for n in all_nodes(case.model.graph)):
            continue
        inputs, outputs = case.data_sets[0]
        arrays = [case_array(a) for a in tensors(list(inputs) + list(outputs))]
        if any(not isinstance(a, np.ndarray) or a.dtype not in dtypes for a in arrays):
            continue  # float8, int4, bfloat16 without ml_dtypes: types pve.onnx does not read
        chosen.append(case)
    return tuple(chosen)
