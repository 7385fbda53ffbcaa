"""The ONNX file format without the ``onnx`` package: protobuf's wire format for
the messages an inference model uses (ModelProto and what it contains).

An ONNX file is a serialized ``onnx.ModelProto`` (onnx/onnx.proto). Protobuf
writes every field as a key (field number << 3 | wire type) followed by a
varint, a fixed 4 or 8 bytes, or a length and that many bytes (strings, bytes,
sub-messages, packed repeated numbers). Reading walks those keys; fields this
module does not know are skipped, as protobuf itself does. Tensor payloads
(``raw_data``) become numpy arrays that view the file's bytes, with no copy;
tensors saved as external data are read from their file next to the model
(a relative location inside the model's directory, as onnxruntime requires).

Decoding never executes anything from the file: a damaged file raises
``ValueError``.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

# TensorProto.DataType -> numpy dtype: the types numpy has...
_NUMPY_DTYPES: Dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8),
    4: np.dtype(np.uint16), 5: np.dtype(np.int16), 6: np.dtype(np.int32),
    7: np.dtype(np.int64), 9: np.dtype(np.bool_), 10: np.dtype(np.float16),
    11: np.dtype(np.float64), 12: np.dtype(np.uint32), 13: np.dtype(np.uint64),
}
_NUMPY_CODES: Dict[np.dtype, int] = {v: k for k, v in _NUMPY_DTYPES.items()}
# ...and the narrow ones it lacks (bfloat16, float8, float4, int4, int2: quantized weights,
# bf16 models), held as the dtypes of the ml_dtypes package, as onnx.numpy_helper holds
# them (by ml_dtypes' names). ml_dtypes is imported only when a model uses one of these
# types; it is not a dependency of pve.onnx. (onnxruntime's python API returns no numpy
# array for most of them: "No corresponding Numpy type", or float8e4m3fn's bits as uint8.)
NARROW_DTYPE_NAMES: Dict[int, str] = {
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2",
    20: "float8_e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu",
    25: "uint2", 26: "int2",
}
_NARROW_CODES: Dict[str, int] = {v: k for k, v in NARROW_DTYPE_NAMES.items()}
# The sub-byte types: bits per element. Files pack them into bytes, the first element in
# the lowest bits (raw_data, and each int32_data value holds one such byte).
PACKED_BITS: Dict[int, int] = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2}


def is_narrow(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is one of the narrow types: ml_dtypes' dtypes are numpy types
    registered by a package (numbered from 256), named as NARROW_DTYPE_NAMES names them.
    (Their kind says nothing: "V", but "f" for float8_e5m2.)"""
    return dtype.num >= 256 and dtype.name in _NARROW_CODES


def ml_dtypes_module(what: str) -> Any:
    """The ml_dtypes package, imported on first use. ``what``: what needs it, for the
    NotImplementedError raised when it is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        raise NotImplementedError(
            f"{what}: pve.onnx holds bfloat16, float8, float4, int4 and int2 tensors as arrays "
            "of the ml_dtypes package, which is not installed (pip install ml_dtypes)") from None
    return ml_dtypes


def narrow_dtype(code: int, what: Optional[str] = None) -> np.dtype:
    """The ml_dtypes dtype of a narrow TensorProto.DataType (see NARROW_DTYPE_NAMES)."""
    what = what or TYPE_NAMES[code]
    name = NARROW_DTYPE_NAMES[code]
    dtype = getattr(ml_dtypes_module(what), name, None)
    if dtype is None:  # (an ml_dtypes older than 0.5)
        raise NotImplementedError(f"{what}: the installed ml_dtypes has no {name} type "
                                  "(pip install -U ml_dtypes)")
    return np.dtype(dtype)


class _DtypeTable(Mapping):
    """TensorProto.DataType -> numpy dtype. ``in`` and lookups cover every type pve.onnx
    reads: looking up a narrow one imports ml_dtypes (NotImplementedError without it).
    Iteration (keys, values, items) covers the types at hand without an import: numpy's,
    and the narrow ones once ml_dtypes is loaded, so a table built from it at import time
    does not load ml_dtypes."""

    def __getitem__(self, code: int) -> np.dtype:
        dtype = _NUMPY_DTYPES.get(code)
        if dtype is not None:
            return dtype
        if code in NARROW_DTYPE_NAMES:
            return narrow_dtype(code)
        raise KeyError(code)

    def __contains__(self, code: object) -> bool:
        return code in _NUMPY_DTYPES or code in NARROW_DTYPE_NAMES

    def _at_hand(self) -> List[int]:
        ml_dtypes = sys.modules.get("ml_dtypes")
        return [*_NUMPY_DTYPES] + ([] if ml_dtypes is None else [
            code for code, name in NARROW_DTYPE_NAMES.items() if hasattr(ml_dtypes, name)])

    def __iter__(self) -> Iterator[int]:
        return iter(self._at_hand())

    def __len__(self) -> int:
        return len(self._at_hand())


class _CodeTable(Mapping):
    """numpy dtype -> TensorProto.DataType, ml_dtypes' dtypes included (an array of one
    exists only once that package is imported: nothing is imported here). Iteration as
    DTYPES'."""

    def __getitem__(self, dtype: Any) -> int:
        code = _NUMPY_CODES.get(dtype)
        if code is None:
            code = _narrow_code(dtype)
        if code is None:
            raise KeyError(dtype)
        return code

    def __contains__(self, dtype: object) -> bool:
        return dtype in _NUMPY_CODES or _narrow_code(dtype) is not None

    def _narrow(self) -> List[np.dtype]:
        ml_dtypes = sys.modules.get("ml_dtypes")
        return [] if ml_dtypes is None else [
            np.dtype(getattr(ml_dtypes, name)) for name in NARROW_DTYPE_NAMES.values()
            if hasattr(ml_dtypes, name)]

    def __iter__(self) -> Iterator[np.dtype]:
        return iter([*_NUMPY_CODES, *self._narrow()])

    def __len__(self) -> int:
        return len(_NUMPY_CODES) + len(self._narrow())


def _narrow_code(dtype: object) -> Optional[int]:
    code = _NARROW_CODES.get(getattr(dtype, "name", None)) if isinstance(dtype, np.dtype) else None
    ml_dtypes = sys.modules.get("ml_dtypes")
    if code is None or ml_dtypes is None:
        return None
    return code if dtype == np.dtype(getattr(ml_dtypes, NARROW_DTYPE_NAMES[code], "V0")) else None


DTYPES: Mapping = _DtypeTable()
DTYPE_CODES: Mapping = _CodeTable()
# onnxruntime's names for input and output types (NodeArg.type).
TYPE_NAMES: Dict[int, str] = {
    1: "tensor(float)", 2: "tensor(uint8)", 3: "tensor(int8)", 4: "tensor(uint16)",
    5: "tensor(int16)", 6: "tensor(int32)", 7: "tensor(int64)", 8: "tensor(string)",
    9: "tensor(bool)", 10: "tensor(float16)", 11: "tensor(double)", 12: "tensor(uint32)",
    13: "tensor(uint64)", 16: "tensor(bfloat16)", 17: "tensor(float8e4m3fn)",
    18: "tensor(float8e4m3fnuz)", 19: "tensor(float8e5m2)", 20: "tensor(float8e5m2fnuz)",
    21: "tensor(uint4)", 22: "tensor(int4)", 23: "tensor(float4e2m1)",
    24: "tensor(float8e8m0)", 25: "tensor(uint2)", 26: "tensor(int2)",
}

# AttributeProto.AttributeType
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH = 1, 2, 3, 4, 5
ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS = 6, 7, 8

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


# --------------------------------------------------------------------------- messages
@dataclass
class Node:
    op_type: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""


@dataclass
class ValueInfo:
    """A value's name and type (a TypeProto): a tensor's element type and shape; for
    ``kind`` "sequence" / "optional" the type of the element (``element``, nested);
    for "map" the key type in ``elem_type`` and the value type in ``element``."""
    name: str
    elem_type: int = 0                              # 0: not given
    shape: Optional[List[Union[int, str, None]]] = None  # None: rank unknown
    kind: str = "tensor"    # tensor | sequence | optional | map | sparse_tensor | opaque
    element: Optional["ValueInfo"] = None


@dataclass
class Graph:
    nodes: List[Node] = field(default_factory=list)
    name: str = ""
    initializers: Dict[str, np.ndarray] = field(default_factory=dict)
    inputs: List[ValueInfo] = field(default_factory=list)
    outputs: List[ValueInfo] = field(default_factory=list)
    doc_string: str = ""


@dataclass
class Model:
    graph: Graph
    ir_version: int = 0
    opsets: Dict[str, int] = field(default_factory=dict)  # domain ('' = ai.onnx) -> version
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata: Dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading
def _varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: memoryview) -> Iterator[Tuple[int, int, Any]]:
    """(field number, wire type, value): an int, or a memoryview for length-delimited."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LENGTH:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("a length-delimited field runs past the end of its message")
            value = buf[pos:pos + size]
            pos += size
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise ValueError("truncated fixed32 field")
            value = buf[pos:pos + 4]
            pos += 4
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise ValueError("truncated fixed64 field")
            value = buf[pos:pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _text(v: Any) -> str:
    return bytes(v).decode("utf-8")


def _packed_varints(wire: int, v: Any) -> List[int]:
    if wire == _VARINT:
        return [_signed(v)]
    out, pos = [], 0
    while pos < len(v):
        x, pos = _varint(v, pos)
        out.append(_signed(x))
    return out


def _packed_reals(wire: int, v: Any, width: int) -> List[float]:
    """A repeated float (width 4) or double (width 8) field: one value, or packed."""
    fmt = "<f4" if width == 4 else "<f8"
    if wire in (_FIXED32, _FIXED64):
        return [float(np.frombuffer(v, fmt)[0])]
    if len(v) % width:
        raise ValueError(f"packed {'float' if width == 4 else 'double'} field of odd length")
    return np.frombuffer(v, fmt).tolist()


def _external_data(name: str, entries: Dict[str, str], base_dir: Optional[str],
                   nbytes: int) -> bytes:
    """The bytes of a tensor stored outside the model (TensorProto.external_data), checked as
    onnxruntime checks them: a relative location inside the model's directory, and exactly
    the tensor's size at ``offset`` (``length``, when given, must be that size)."""
    if base_dir is None:
        raise ValueError(f"tensor {name!r} keeps its data in an external file: load the model "
                         "from its path (not its bytes) so that the file can be found")
    location = entries.get("location", "")
    if not location or os.path.isabs(location):
        raise ValueError(f"tensor {name!r}: external data location {location!r} must be a path "
                         "relative to the model's directory")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"tensor {name!r}: external data location {location!r} is outside the "
                         "model's directory")
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries.get("length", nbytes))
    except ValueError:
        raise ValueError(f"tensor {name!r}: external data offset or length is not a number") \
            from None
    if offset < 0 or length != nbytes:
        raise ValueError(f"tensor {name!r}: external data of {length} bytes at offset {offset}, "
                         f"the tensor needs {nbytes}")
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            raw = fh.read(nbytes)
    except OSError as e:
        raise ValueError(f"tensor {name!r}: cannot read external data file {location!r} "
                         f"({e.strerror or e})") from None
    if len(raw) != nbytes:
        raise ValueError(f"tensor {name!r}: external data file {location!r} ends before "
                         f"offset {offset} + {nbytes} bytes")
    return raw


def read_tensor(buf: memoryview, base_dir: Optional[str] = None) -> Tuple[str, np.ndarray]:
    """A TensorProto as (name, array). ``base_dir``: the model file's directory, where
    tensors with external data keep it (None: a model read from bytes, which cannot)."""
    dims: List[int] = []
    dtype_code = 0
    name = ""
    raw = None
    floats: List[float] = []
    ints: List[int] = []
    doubles: List[float] = []
    external = False
    entries: Dict[str, str] = {}
    for number, wire, v in _fields(buf):
        if number == 1:
            dims.extend(_packed_varints(wire, v))
        elif number == 2:
            dtype_code = v
        elif number == 4:
            floats.extend(_packed_reals(wire, v, 4))
        elif number in (5, 7, 11):  # int32_data, int64_data, uint64_data
            ints.extend(_packed_varints(wire, v))
        elif number == 8:
            name = _text(v)
        elif number == 9:
            raw = v
        elif number == 10:
            doubles.extend(_packed_reals(wire, v, 8))
        elif number == 13:  # external_data: StringStringEntryProto (key, value)
            key = value = ""
            for n2, _, v2 in _fields(v):
                if n2 == 1:
                    key = _text(v2)
                elif n2 == 2:
                    value = _text(v2)
            entries[key] = value
        elif number == 14:
            external = v == 1
    if dtype_code not in DTYPES:
        raise ValueError(f"tensor {name!r} has data type {dtype_code}, which pve.onnx does not support")
    if any(d < 0 for d in dims):
        raise ValueError(f"tensor {name!r} has a negative dimension {dims}")
    dtype = _tensor_dtype(dtype_code, name)
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    nbytes = _stored_size(dtype_code, dtype, count)
    if external:
        raw = _external_data(name, entries, base_dir, nbytes)
    if raw is not None:
        if len(raw) != nbytes:
            raise ValueError(f"tensor {name!r}: {len(raw)} bytes of data for shape {dims} "
                             f"of {dtype.name}")
        if dtype_code in PACKED_BITS:
            arr = _unpack(np.frombuffer(raw, np.uint8), dtype_code, dtype, count)
        else:
            arr = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype, copy=False)
    else:
        arr = _typed_values(dtype_code, dtype, count, floats, ints, doubles)
    if arr.size != count:
        raise ValueError(f"tensor {name!r}: {arr.size} values for shape {dims}")
    return name, arr.reshape(dims)


def _tensor_dtype(code: int, name: str) -> np.dtype:
    return DTYPES[code] if code in _NUMPY_DTYPES else narrow_dtype(
        code, f"tensor {name!r} of type {TYPE_NAMES[code]}")


def _stored_size(code: int, dtype: np.dtype, count: int) -> int:
    """Bytes of ``count`` elements in raw_data: sub-byte types packed, a last byte padded."""
    bits = PACKED_BITS.get(code)
    return count * dtype.itemsize if bits is None else -(-count * bits // 8)


def _typed_values(code: int, dtype: np.dtype, count: int, floats: List[float],
                  ints: List[int], doubles: List[float]) -> np.ndarray:
    """The elements of a tensor stored in its typed field (float_data, int32_data, ...)."""
    if code == 1:
        return np.asarray(floats, np.float32)
    if code == 11:
        return np.asarray(doubles, np.float64)
    if code in PACKED_BITS:  # (each int32_data value holds one packed byte)
        packed = np.asarray(ints, np.int64)
        if packed.size != _stored_size(code, dtype, count):
            raise ValueError(f"{packed.size} packed int32_data values for {count} elements of "
                             f"{TYPE_NAMES[code]}")
        return _unpack(packed.astype(np.uint8), code, dtype, count)
    if code in (10, 16):  # float16 and bfloat16 values travel as their bits in int32_data
        return np.asarray(ints, np.int64).astype(np.uint16).view(dtype)
    if code in NARROW_DTYPE_NAMES:  # the 8-bit floats: their bits
        return np.asarray(ints, np.int64).astype(np.uint8).view(dtype)
    return np.asarray(ints, np.int64).astype(dtype)


def _unpack(packed: np.ndarray, code: int, dtype: np.dtype, count: int) -> np.ndarray:
    """``count`` elements of a sub-byte type from their packed bytes (low bits first)."""
    bits = PACKED_BITS[code]
    shifts = np.arange(0, 8, bits, dtype=np.uint8)
    values = (packed[:, None] >> shifts) & np.uint8((1 << bits) - 1)
    return values.reshape(-1)[:count].view(dtype)


def _pack(arr: np.ndarray, code: int) -> bytes:
    """The packed bytes of a sub-byte array (low bits first, the last byte zero-padded)."""
    bits = PACKED_BITS[code]
    per_byte = 8 // bits
    values = np.ascontiguousarray(arr).reshape(-1).view(np.uint8) & np.uint8((1 << bits) - 1)
    values = np.concatenate([values, np.zeros(-values.size % per_byte, np.uint8)])
    shifts = np.arange(0, 8, bits, dtype=np.uint8)
    return np.bitwise_or.reduce(values.reshape(-1, per_byte) << shifts, axis=1).astype(
        np.uint8).tobytes()


def _read_shape(buf: memoryview) -> List[Union[int, str, None]]:
    dims: List[Union[int, str, None]] = []
    for number, _, v in _fields(buf):
        if number == 1:
            d: Union[int, str, None] = None
            for n2, _, v2 in _fields(v):
                if n2 == 1:
                    d = _signed(v2)
                elif n2 == 2:
                    d = _text(v2)
            dims.append(d)
    return dims


def _element_type(code: int, name: str) -> int:
    """A graph input's or output's element type; a narrow one needs ml_dtypes (checked at
    load, so that a model pve.onnx cannot run without it says so at once)."""
    if code in NARROW_DTYPE_NAMES:
        narrow_dtype(code, f"graph input or output {name!r} of type {TYPE_NAMES[code]}")
    return code


def _read_tensor_type(buf: memoryview, info: ValueInfo, name: str) -> None:
    """TypeProto.Tensor (and SparseTensor): elem_type 1, shape 2."""
    for number, _, v in _fields(buf):
        if number == 1:
            info.elem_type = _element_type(v, name)
        elif number == 2:
            info.shape = _read_shape(v)


def _nested_type(buf: memoryview, number: int, name: str) -> Optional[ValueInfo]:
    """The TypeProto in field ``number`` of a Sequence / Optional / Map type."""
    nested = None
    for n, _, v in _fields(buf):
        if n == number:
            nested = read_type(v, name=name)
    return nested


def read_type(buf: memoryview, info: Optional[ValueInfo] = None, name: str = "") -> ValueInfo:
    """A TypeProto, into ``info`` (or a new ValueInfo): tensor_type 1, sequence_type 4,
    map_type 5, opaque_type 7, sparse_tensor_type 8, optional_type 9 (nested types
    recursively). ``name``: the value it types, for error messages."""
    info = ValueInfo(name="") if info is None else info
    for number, _, v in _fields(buf):
        if number == 1:
            info.kind = "tensor"
            _read_tensor_type(v, info, name)
        elif number == 4:
            info.kind, info.element = "sequence", _nested_type(v, 1, name)
        elif number == 9:
            info.kind, info.element = "optional", _nested_type(v, 1, name)
        elif number == 5:
            info.kind, info.element = "map", _nested_type(v, 2, name)
            for n2, _, v2 in _fields(v):
                if n2 == 1:  # key_type: a TensorProto.DataType
                    info.elem_type = v2
        elif number == 8:
            info.kind = "sparse_tensor"
            _read_tensor_type(v, info, name)
        elif number == 7:
            info.kind = "opaque"
    return info


def read_value_info(buf: memoryview) -> ValueInfo:
    info = ValueInfo(name="")
    for number, _, v in _fields(buf):
        if number == 1:
            info.name = _text(v)
        elif number == 2:
            read_type(v, info, info.name)
    return info


# AttributeType TYPE_PROTO / TYPE_PROTOS (Optional's ``type``): read as ValueInfo
_ATTR_TYPE_PROTO, _ATTR_TYPE_PROTOS = 13, 14


def _read_attribute(buf: memoryview, base_dir: Optional[str] = None) -> Tuple[str, Any]:
    name = ""
    kind = 0
    types: List[ValueInfo] = []
    f = 0.0
    i = 0
    s = b""
    t = None
    g = None
    floats: List[float] = []
    ints: List[int] = []
    strings: List[bytes] = []
    seen = set()
    for number, wire, v in _fields(buf):
        seen.add(number)
        if number == 1:
            name = _text(v)
        elif number == 20:
            kind = v
        elif number == 2:
            f = struct.unpack("<f", v)[0]
        elif number == 3:
            i = _signed(v)
        elif number == 4:
            s = bytes(v)
        elif number == 5:
            t = read_tensor(v, base_dir)[1]
        elif number == 6:
            g = read_graph(v, base_dir)
        elif number == 7:
            floats.extend(_packed_reals(wire, v, 4))
        elif number == 8:
            ints.extend(_packed_varints(wire, v))
        elif number == 9:
            strings.append(bytes(v))
        elif number in (14, 15):  # tp, type_protos
            types.append(read_type(v))
        elif number == 21:
            raise ValueError(f"attribute {name!r} refers to a function attribute, which pve.onnx "
                             "does not support")
    if kind == 0:  # old writers leave the type out: infer it from the field present
        for number, k in ((2, ATTR_FLOAT), (3, ATTR_INT), (4, ATTR_STRING), (5, ATTR_TENSOR),
                          (6, ATTR_GRAPH), (7, ATTR_FLOATS), (8, ATTR_INTS), (9, ATTR_STRINGS)):
            if number in seen:
                kind = k
                break
    value: Any = {ATTR_FLOAT: f, ATTR_INT: i, ATTR_STRING: s, ATTR_TENSOR: t, ATTR_GRAPH: g,
                  ATTR_FLOATS: floats, ATTR_INTS: ints, ATTR_STRINGS: strings,
                  _ATTR_TYPE_PROTO: types[0] if types else None,
                  _ATTR_TYPE_PROTOS: types}.get(kind)
    if kind not in (ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH, ATTR_FLOATS,
                    ATTR_INTS, ATTR_STRINGS, _ATTR_TYPE_PROTO, _ATTR_TYPE_PROTOS):
        raise ValueError(f"attribute {name!r} has type {kind}, which pve.onnx does not support")
    return name, value


def read_node(buf: memoryview, base_dir: Optional[str] = None) -> Node:
    node = Node(op_type="", inputs=[], outputs=[])
    for number, _, v in _fields(buf):
        if number == 1:
            node.inputs.append(_text(v))
        elif number == 2:
            node.outputs.append(_text(v))
        elif number == 3:
            node.name = _text(v)
        elif number == 4:
            node.op_type = _text(v)
        elif number == 5:
            key, value = _read_attribute(v, base_dir)
            node.attrs[key] = value
        elif number == 7:
            node.domain = _text(v)
    return node


def read_graph(buf: memoryview, base_dir: Optional[str] = None) -> Graph:
    graph = Graph()
    for number, _, v in _fields(buf):
        if number == 1:
            graph.nodes.append(read_node(v, base_dir))
        elif number == 2:
            graph.name = _text(v)
        elif number == 10:
            graph.doc_string = _text(v)
        elif number == 5:
            name, arr = read_tensor(v, base_dir)
            graph.initializers[name] = arr
        elif number == 15:
            raise ValueError("sparse initializers are not supported by pve.onnx")
        elif number == 11:
            graph.inputs.append(read_value_info(v))
        elif number == 12:
            graph.outputs.append(read_value_info(v))
    return graph


def read_model(data: Union[bytes, bytearray, memoryview], base_dir: Optional[str] = None) -> Model:
    """Parse a serialized ModelProto. Raises ValueError on anything malformed. ``base_dir``:
    the directory of the model file, for tensors whose data is in external files."""
    buf = memoryview(data).cast("B")
    model = Model(graph=Graph())
    has_graph = False
    for number, _, v in _fields(buf):
        if number == 1:
            model.ir_version = v
        elif number == 2:
            model.producer_name = _text(v)
        elif number == 3:
            model.producer_version = _text(v)
        elif number == 4:
            model.domain = _text(v)
        elif number == 5:
            model.model_version = _signed(v)
        elif number == 6:
            model.doc_string = _text(v)
        elif number == 7:
            model.graph = read_graph(v, base_dir)
            has_graph = True
        elif number == 8:
            domain, version = "", 0
            for n2, _, v2 in _fields(v):
                if n2 == 1:
                    domain = _text(v2)
                elif n2 == 2:
                    version = _signed(v2)
            model.opsets["" if domain == "ai.onnx" else domain] = version
        elif number == 14:
            key = value = ""
            for n2, _, v2 in _fields(v):
                if n2 == 1:
                    key = _text(v2)
                elif n2 == 2:
                    value = _text(v2)
            model.metadata[key] = value
    if not has_graph:
        raise ValueError("no graph in the model (not an ONNX model file?)")
    return model


# --------------------------------------------------------------------------- writing
def _enc_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _enc_varint(number << 3 | wire)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH) + _enc_varint(len(payload)) + payload


def _str_field(number: int, text: str) -> bytes:
    return _len_field(number, text.encode("utf-8"))


def _int_field(number: int, v: int) -> bytes:
    return _key(number, _VARINT) + _enc_varint(int(v))


def _packed_ints(number: int, values: List[int]) -> bytes:
    return _len_field(number, b"".join(_enc_varint(int(v)) for v in values))


def write_tensor(name: str, arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    if arr.dtype not in DTYPE_CODES:
        raise TypeError(f"tensor {name!r}: dtype {arr.dtype} has no ONNX type pve.onnx writes")
    code = DTYPE_CODES[arr.dtype]
    if code in PACKED_BITS:
        data = _pack(arr, code)
    else:
        data = np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes()
    out = [_packed_ints(1, list(arr.shape)) if arr.ndim else b"",
           _int_field(2, code), _str_field(8, name), _len_field(9, data)]
    return b"".join(out)


def _write_attribute(name: str, value: Any) -> bytes:
    out = [_str_field(1, name)]
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        out += [_int_field(3, int(value)), _int_field(20, ATTR_INT)]
    elif isinstance(value, (float, np.floating)):
        out += [_key(2, _FIXED32) + struct.pack("<f", float(value)), _int_field(20, ATTR_FLOAT)]
    elif isinstance(value, (str, bytes)):
        raw = value.encode("utf-8") if isinstance(value, str) else value
        out += [_len_field(4, raw), _int_field(20, ATTR_STRING)]
    elif isinstance(value, np.ndarray):
        out += [_len_field(5, write_tensor("", value)), _int_field(20, ATTR_TENSOR)]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in value):
        out += [_packed_ints(8, list(value)), _int_field(20, ATTR_INTS)]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        out += [_len_field(7, np.asarray(value, "<f4").tobytes()), _int_field(20, ATTR_FLOATS)]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, bytes)) for v in value):
        out += [_len_field(9, v.encode("utf-8") if isinstance(v, str) else v) for v in value]
        out.append(_int_field(20, ATTR_STRINGS))
    else:
        raise TypeError(f"attribute {name!r}: cannot write a value of type {type(value).__name__}")
    return b"".join(out)


def write_node(node: Node) -> bytes:
    out = [_str_field(1, s) for s in node.inputs] + [_str_field(2, s) for s in node.outputs]
    if node.name:
        out.append(_str_field(3, node.name))
    out.append(_str_field(4, node.op_type))
    out += [_len_field(5, _write_attribute(k, v)) for k, v in node.attrs.items()]
    if node.domain:
        out.append(_str_field(7, node.domain))
    return b"".join(out)


def write_value_info(info: ValueInfo) -> bytes:
    tensor_type = [_int_field(1, info.elem_type)]
    if info.shape is not None:
        dims = []
        for d in info.shape:
            if isinstance(d, str):
                dims.append(_len_field(1, _str_field(2, d)))
            elif d is None:
                dims.append(_len_field(1, b""))
            else:
                dims.append(_len_field(1, _int_field(1, d)))
        tensor_type.append(_len_field(2, b"".join(dims)))
    type_proto = _len_field(1, b"".join(tensor_type))
    return _str_field(1, info.name) + _len_field(2, type_proto)


def write_graph(graph: Graph) -> bytes:
    out = [_len_field(1, write_node(n)) for n in graph.nodes]
    out.append(_str_field(2, graph.name or "graph"))
    out += [_len_field(5, write_tensor(k, v)) for k, v in graph.initializers.items()]
    out += [_len_field(11, write_value_info(v)) for v in graph.inputs]
    out += [_len_field(12, write_value_info(v)) for v in graph.outputs]
    if graph.doc_string:
        out.append(_str_field(10, graph.doc_string))
    return b"".join(out)


def write_model(model: Model) -> bytes:
    out = [_int_field(1, model.ir_version)]
    if model.producer_name:
        out.append(_str_field(2, model.producer_name))
    if model.producer_version:
        out.append(_str_field(3, model.producer_version))
    if model.doc_string:
        out.append(_str_field(6, model.doc_string))
    out.append(_len_field(7, write_graph(model.graph)))
    for domain, version in model.opsets.items():
        entry = (_str_field(1, domain) if domain else b"") + _int_field(2, version)
        out.append(_len_field(8, entry))
    for k, v in model.metadata.items():
        out.append(_len_field(14, _str_field(1, k) + _str_field(2, v)))
    return b"".join(out)
