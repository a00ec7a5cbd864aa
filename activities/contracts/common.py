"""Base model and shared value types of all contracts."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
"""A sha256 digest as we write it everywhere: 64 lowercase hex digits."""


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


def is_sha256(value: str) -> bool:
    """True when ``value`` is a sha256 digest in our spelling (64 lowercase hex digits)."""
    return SHA256_HEX.match(value) is not None


def _check_sha256(value: str) -> str:
    if not is_sha256(value):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return value


Sha256 = Annotated[str, AfterValidator(_check_sha256)]
"""A sha256 digest (64 lowercase hex digits)."""


def nest_flat_fields(data: Any, owner: type[BaseModel], field: str) -> Any:
    """``data`` (input of ``owner``) with the flat fields of ``owner.field``'s model nested.

    For ``mode="before"`` validators of requests whose settings moved into a nested options
    model: an activity task scheduled by an older workflow (the same names, flat) still
    validates.
    """
    if not isinstance(data, dict) or field in data:
        return data
    options = owner.model_fields[field].annotation
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        return data
    names = set(options.model_fields) - set(owner.model_fields)
    flat = {name: data[name] for name in names if name in data}
    if not flat:
        return data
    rest = {name: value for name, value in data.items() if name not in flat}
    return {**rest, field: flat}


def accepts_flat_options(field: str = "options") -> Any:
    """A ``mode="before"`` model validator applying :func:`nest_flat_fields` to ``field``.

    Use as a class attribute: ``_flat_options = accepts_flat_options()``.
    """

    def nest(cls: type[BaseModel], data: Any) -> Any:
        return nest_flat_fields(data, cls, field)

    # pydantic's overloads do not accept a classmethod object built at run time; it is what
    # the decorator form produces, so the call is correct.
    return model_validator(mode="before")(classmethod(nest))  # type: ignore[arg-type]
