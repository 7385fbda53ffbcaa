"""A bfloat16 ONNX model as its float32 twin, for comparing pve.onnx's bfloat16 results
(each operator computed in float32, its result rounded to bfloat16, as onnxruntime's
bfloat16 kernels do) with a float32 engine: onnxruntime or onnx's reference."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper


def bf16_rounded_in_float32(model):
    """The model in float32, each bfloat16 value a node makes rounded through a Cast to
    bfloat16 and back: onnxruntime (no bfloat16 math kernels on CPU) computing what
    pve.onnx computes (onnx's shape inference gives the types of the intermediates)."""
    from onnx import shape_inference
    graph = shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
    nodes = []
    for original in graph.node:
        node, rounding = onnx.NodeProto(), []
        node.CopyFrom(original)
        for k, name in enumerate(node.output):
            if types.get(name) == TP.BFLOAT16:
                node.output[k] = name + "_f32"
                rounding += [helper.make_node("Cast", [name + "_f32"], [name + "_bf16"],
                                              to=TP.BFLOAT16),
                             helper.make_node("Cast", [name + "_bf16"], [name], to=TP.FLOAT)]
        nodes += [node] + rounding

    def as_float(value_info):
        elem = value_info.type.tensor_type.elem_type
        return helper.make_tensor_value_info(
            value_info.name, TP.FLOAT if elem == TP.BFLOAT16 else elem, None)

    def float_initializer(tensor):
        if tensor.data_type != TP.BFLOAT16:
            return tensor
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32),
                                       tensor.name)
    return helper.make_model(
        helper.make_graph(nodes, graph.name, [as_float(v) for v in graph.input],
                          [as_float(v) for v in graph.output],
                          [float_initializer(t) for t in graph.initializer]),
        opset_imports=model.opset_import, ir_version=model.ir_version)
