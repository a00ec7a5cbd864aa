"""Every contract model survives Temporal's pydantic data converter unchanged."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

import activities.contracts
from activities.contracts.common import Contract
from activities.contracts.dataset import AssembleRequest
from tests.helpers.contract_examples import EXAMPLES


def _all_contract_classes() -> set[type]:
    for module in pkgutil.iter_modules(activities.contracts.__path__):
        importlib.import_module(f"activities.contracts.{module.name}")
    found: set[type] = set()
    stack = [Contract]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found.add(sub)
            stack.append(sub)
    return found


def test_every_contract_has_an_example() -> None:
    missing = {c.__qualname__ for c in _all_contract_classes()} - {
        type(e).__qualname__ for e in EXAMPLES
    }
    assert not missing, f"add examples to tests/unit/contract_examples.py for: {sorted(missing)}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
async def test_round_trip_through_pydantic_converter(example: Contract) -> None:
    payloads = await pydantic_data_converter.encode([example])
    (decoded,) = await pydantic_data_converter.decode(payloads, [type(example)])
    assert decoded == example
    assert type(decoded) is type(example)


def test_contracts_are_frozen_and_strict() -> None:
    request = AssembleRequest(dataset="demo", prefix="datasets/demo")
    with pytest.raises(ValidationError):
        request.prefix = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        AssembleRequest(dataset="demo", prefix="datasets/demo", surprise=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("prefix", ["../etc", "a/../../b", "/abs", "a\\b"])
def test_unsafe_prefixes_rejected(prefix: str) -> None:
    with pytest.raises(ValidationError, match="unsafe object key"):
        AssembleRequest(dataset="demo", prefix=prefix)
