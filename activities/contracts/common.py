"""Base model and shared value types of all contracts."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Contract(BaseModel):
    """Base of every workflow/activity input and output: immutable, strict about fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_model_name(value: str) -> str:
    if not _MODEL_NAME.match(value):
        raise ValueError(
            f"invalid model name {value!r}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return value


ModelName = Annotated[str, AfterValidator(_check_model_name)]
"""A model's name: used in workflow ids (``retrain-{name}``) and registry keys."""


def _check_key(value: str) -> str:
    if "\\" in value or value.startswith("/") or any(p == ".." for p in value.split("/")):
        raise ValueError(f"unsafe object key or prefix {value!r}: no '..', '\\' or leading '/'")
    return value


ObjectKey = Annotated[str, AfterValidator(_check_key)]
"""An object key or prefix that cannot escape a directory when materialized."""
