"""A version's model signature: what a serving system needs to call ``model.onnx``.

Read from the ONNX graph (a protobuf: parsing it runs no code), so the signature states what
the file really takes and returns, and it is signed with the rest of ``metadata.json``.
"""

from __future__ import annotations

from pathlib import Path

from activities.contracts.registry import ModelSignature, TensorSpec
from activities.infra.errors import BadInputError


def _specs(values: object) -> list[TensorSpec]:
    import onnx

    specs = []
    for value in values:  # type: ignore[attr-defined]  # why: onnx's protobuf types are untyped
        tensor = value.type.tensor_type
        shape: list[int | str] = [
            dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?")
            for dim in tensor.shape.dim
        ]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        specs.append(TensorSpec(name=value.name, shape=shape, dtype=dtype))
    return specs


def onnx_signature(path: Path, task: str, class_names: list[str]) -> ModelSignature:
    """The signature of the ONNX model at ``path`` (BadInputError when it is not ONNX)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf decode errors of several kinds
        raise BadInputError(f"{path.name} is not an ONNX model: {exc}") from None
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    return ModelSignature(
        task=task,
        inputs=_specs(inputs),
        outputs=_specs(graph.output),
        class_names=list(class_names),
    )
