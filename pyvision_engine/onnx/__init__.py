"""ONNX for pyvision_engine, without the onnx or onnxruntime packages.

    sess = pve.onnx.InferenceSession("model.onnx")          # as onnxruntime's
    (logits,) = sess.run(None, {sess.get_inputs()[0].name: images})
    pve.onnx.export(model, example_input, "model.onnx")     # onnxruntime runs it

Files are read and written by ``_proto`` (protobuf's wire format for the
ONNX messages); loading a file never executes code from it.
"""

from pyvision_engine.onnx.export import export
from pyvision_engine.onnx.session import InferenceSession, NodeArg, SessionOptions, supported_ops

__all__ = ["InferenceSession", "NodeArg", "SessionOptions", "export", "supported_ops"]
