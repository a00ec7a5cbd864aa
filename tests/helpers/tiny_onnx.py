"""A real (tiny) ONNX file for tests that publish without exporting: the registry reads the
model signature of every ``model.onnx`` it registers."""

from __future__ import annotations


def onnx_bytes(tag: bytes = b"", classes: int = 2) -> bytes:
    """An ONNX model ``images [1,3,64,64] float32 -> output0 [1, 4 + classes, 84] float32``
    whose bytes differ by ``tag`` (kept in its doc string)."""
    import onnx
    from onnx import TensorProto, helper

    dims = [1, 4 + classes, 84]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, dims)
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], dims)
    node = helper.make_node("ConstantOfShape", ["shape"], ["output0"])
    graph = helper.make_graph(
        [node], "tiny", [images], [output], initializer=[shape], doc_string=tag.hex()
    )
    return onnx.helper.make_model(graph, producer_name="sentinel-tests").SerializeToString()
