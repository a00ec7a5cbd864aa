"""Label Studio's documented import format for pre-annotated tasks, as a JSON Schema.

Written from Label Studio's guide "Import pre-annotated data into Label Studio"
(``docs/source/guide/predictions.md``: the table of keys that exist for all pre-annotations,
and the image examples) and the predictions API reference:

* a task is an object with a ``data`` object (here: the Image tag's ``$image`` field) and a
  ``predictions`` array;
* a prediction has ``result`` (array), optional ``model_version`` (string) and ``score``
  (number: "can be used in Data Manager to sort tasks by model confidence");
* a result item has ``id`` (string), ``from_name``, ``to_name``, ``type``, ``value``
  (object), optional ``readonly``/``hidden`` (bool) and ``score``; image regions carry
  ``original_width``, ``original_height`` and ``image_rotation``;
* "Label Studio expects the x, y, width, and height of image annotations to be provided in
  percentages of overall image dimension": ``rectanglelabels`` values have ``x``, ``y``,
  ``width``, ``height``, ``rotation`` and a ``rectanglelabels`` list; ``polygonlabels``
  ``points`` ([x, y] in percent); ``keypointlabels`` ``x``, ``y``, ``width``; ``choices`` a
  ``choices`` list;
* "You must use different IDs for each task elements, annotations, predictions and their
  result items" (checked by :func:`result_ids_unique`, not expressible in the schema).
"""

from __future__ import annotations

from typing import Any

_PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
_LABELS = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}


def _value_of(kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "if": {"properties": {"type": {"const": kind}}},
        "then": {
            "properties": {
                "value": {"type": "object", "properties": properties, "required": required}
            }
        },
    }


_IMAGE_REGION = {
    "if": {"properties": {"type": {"not": {"const": "choices"}}}},
    "then": {"required": ["original_width", "original_height"]},
}
_AXIS_ALIGNED_BOX_IN_IMAGE = {
    "if": {
        "properties": {
            "type": {"const": "rectanglelabels"},
            "value": {"properties": {"rotation": {"const": 0}}},
        }
    },
    "then": {
        "properties": {
            "value": {
                "properties": {"x": _PERCENT, "y": _PERCENT, "width": _PERCENT, "height": _PERCENT}
            }
        }
    },
}

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "from_name", "to_name", "value"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {
            "enum": ["rectanglelabels", "polygonlabels", "keypointlabels", "choices", "labels"]
        },
        "from_name": {"type": "string", "minLength": 1},
        "to_name": {"type": "string", "minLength": 1},
        "value": {"type": "object"},
        "readonly": {"type": "boolean"},
        "hidden": {"type": "boolean"},
        "score": {"type": "number"},
        "original_width": {"type": "integer", "minimum": 1},
        "original_height": {"type": "integer", "minimum": 1},
        "image_rotation": {"type": "number"},
    },
    "allOf": [
        _IMAGE_REGION,
        _AXIS_ALIGNED_BOX_IN_IMAGE,
        _value_of(
            "rectanglelabels",
            {
                "x": {"type": "number"},
                "y": {"type": "number"},
                "width": {"type": "number", "minimum": 0},
                "height": {"type": "number", "minimum": 0},
                "rotation": {"type": "number"},
                "rectanglelabels": _LABELS,
            },
            ["x", "y", "width", "height", "rectanglelabels"],
        ),
        _value_of(
            "polygonlabels",
            {
                "points": {
                    "type": "array",
                    "minItems": 3,
                    "items": {"type": "array", "items": _PERCENT, "minItems": 2, "maxItems": 2},
                },
                "polygonlabels": _LABELS,
            },
            ["points", "polygonlabels"],
        ),
        _value_of(
            "keypointlabels",
            {"x": _PERCENT, "y": _PERCENT, "width": {"type": "number"}, "keypointlabels": _LABELS},
            ["x", "y", "keypointlabels"],
        ),
        _value_of("choices", {"choices": _LABELS}, ["choices"]),
    ],
}

TASK_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["data", "predictions"],
    "properties": {
        "data": {
            "type": "object",
            "required": ["image"],
            "properties": {"image": {"type": "string", "minLength": 1}},
        },
        "predictions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["result"],
                "properties": {
                    "model_version": {"type": "string"},
                    "score": {"type": "number"},
                    "result": {"type": "array", "items": RESULT_SCHEMA},
                },
            },
        },
    },
}
"""One task of a Label Studio JSON import (a file holds a list of them)."""

TASKS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "items": TASK_SCHEMA,
}


def validate_tasks(tasks: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``tasks`` is a valid import file's content."""
    import jsonschema

    jsonschema.Draft202012Validator(TASKS_SCHEMA).validate(tasks)


def result_ids_unique(tasks: list[dict[str, Any]]) -> bool:
    """Whether every result item of every prediction has its own id (across the file)."""
    ids = [
        item["id"]
        for task in tasks
        for prediction in task["predictions"]
        for item in prediction["result"]
    ]
    return len(ids) == len(set(ids))
