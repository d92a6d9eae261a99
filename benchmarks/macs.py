"""Count the multiply-accumulates of one call of an ONNX graph (Conv, ConvTranspose, MatMul, Gemm, LSTM, GRU).

Element-wise ops, norms and FFTs outside the graph are left out: they are a small share of these models and
their cost depends on the runtime. Needs the `onnx` package (in the `train` and `test` extras).
"""

from __future__ import annotations

from math import prod
from pathlib import Path

Shape = list[int]


def _shapes(model) -> dict[str, Shape]:  # onnx.ModelProto
    """Static shape of every tensor: inputs, weights, constants and inferred intermediates."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*inferred.input, *inferred.value_info, *inferred.output)
    }
    shapes.update({t.name: list(t.dims) for t in inferred.initializer})
    for node in inferred.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    return shapes


def onnx_macs(path: str | Path, dims: dict[str, Shape] | None = None) -> int:
    """MACs of one run of the graph at `path`, its symbolic input dimensions fixed by `dims` (name -> shape)."""
    import onnx

    model = onnx.load(str(path))
    for tensor in model.graph.input:
        for dim, value in zip(tensor.type.tensor_type.shape.dim, (dims or {}).get(tensor.name, [])):
            dim.dim_value = value
    shapes = _shapes(model)

    def shape(name: str, node) -> Shape:  # node: onnx.NodeProto, for the message
        found = shapes.get(name)
        if not found or 0 in found:
            raise ValueError(f"{path}: shape of {node.op_type} node {node.name!r} is not static; pass dims")
        return found

    total = 0
    for node in model.graph.node:
        op, ins, out = node.op_type, node.input, node.output[0]
        if op == "Conv":
            total += prod(shape(out, node)) * prod(shape(ins[1], node)[1:])
        elif op == "ConvTranspose":
            total += prod(shape(ins[0], node)) * prod(shape(ins[1], node)[1:])
        elif op in ("MatMul", "Gemm"):
            a = shape(ins[0], node)
            transposed = op == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
            total += prod(shape(out, node)) * (a[-2] if transposed else a[-1])
        elif op in ("LSTM", "GRU"):
            steps, batch = shape(ins[0], node)[:2]
            directions, rows, inputs = shape(ins[1], node)  # rows = gates x hidden
            total += steps * batch * directions * rows * (inputs + shape(ins[2], node)[2])
    return total
