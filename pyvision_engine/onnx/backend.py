"""pve.onnx as an ONNX backend (``onnx.backend.base``), for onnx's own test runner.

    import pyvision_engine.onnx.backend as pve_backend
    outputs = pve_backend.run_model(model_proto, [x])      # a tuple of numpy arrays
    rep = pve_backend.prepare(model_proto); rep.run([x])

    backend_test = onnx.backend.test.BackendTest(pve_backend, __name__)

This module needs the ``onnx`` package (the interface is onnx's); the rest of
pve.onnx does not. Models run on ``InferenceSession``, CPU only.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np

try:
    import onnx
    from onnx.backend.base import Backend, BackendRep
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("pyvision_engine.onnx.backend implements onnx's backend interface and needs "
                      "the onnx package (pip install onnx); InferenceSession itself does not") from e

from pyvision_engine.onnx.session import InferenceSession, supported_ops


class PveBackendRep(BackendRep):
    """A prepared model: ``run(inputs)`` with inputs in the graph's input order (a list
    or tuple), one array for a one-input graph, or a dict by name."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session

    def run(self, inputs: Any, **kwargs: Any) -> Tuple[np.ndarray, ...]:
        names = [i.name for i in self.session.get_inputs()]
        if isinstance(inputs, dict):
            feed: Dict[str, Any] = dict(inputs)
        elif isinstance(inputs, np.ndarray):
            feed = {names[0]: inputs} if names else {}
        else:
            if len(inputs) > len(names):
                raise ValueError(f"pve.onnx backend: {len(inputs)} inputs for a graph with "
                                 f"{len(names)} ({names})")
            feed = dict(zip(names, inputs))
        return tuple(self.session.run(None, feed))


class PveBackend(Backend):
    @classmethod
    def is_compatible(cls, model: "onnx.ModelProto", device: str = "CPU", **kwargs: Any) -> bool:
        known = set(supported_ops())
        return cls.supports_device(device) and all(
            n.domain in ("", "ai.onnx") and n.op_type in known for n in model.graph.node)

    @classmethod
    def prepare(cls, model: "onnx.ModelProto", device: str = "CPU", **kwargs: Any) -> PveBackendRep:
        if not cls.supports_device(device):
            raise ValueError(f"pve.onnx backend: device {device!r} is not supported (CPU only)")
        data = model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
        return PveBackendRep(InferenceSession(data))

    @classmethod
    def run_model(cls, model: "onnx.ModelProto", inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> Tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: "onnx.NodeProto", inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[Tuple[np.dtype, Tuple[int, ...]]] = None,
                 **kwargs: Any) -> Tuple[np.ndarray, ...]:
        """One node as a one-node model (the latest opset onnx knows; ``opset_version``
        in kwargs to pick another). Inputs as a list in the node's input order."""
        from onnx import helper
        arrays = [np.asarray(a) for a in inputs]
        graph_inputs = [helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape))
            for name, a in zip(node.input, arrays) if name]
        graph_outputs = [helper.make_empty_tensor_value_info(name) for name in node.output if name]
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        feed = {name: a for name, a in zip(node.input, arrays) if name}
        return cls.prepare(model, device).run(feed)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().startswith("CPU")


is_compatible = PveBackend.is_compatible
prepare = PveBackend.prepare
run_model = PveBackend.run_model
run_node = PveBackend.run_node
supports_device = PveBackend.supports_device
