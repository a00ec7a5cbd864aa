"""Promote and rollback requests carry the production version the caller saw; requests from
before that field (in-flight registry workflows, older clients) stay valid."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from activities.contracts.registry import PromoteVersionRequest, RollbackRequest
from activities.registry.aliases import UNCHECKED, expectation_of

OLD_PROMOTE = (
    '{"model": "parts", "version": 3, "reason": "hotfix", "request_id": "cli-1", '
    '"requested_at": "2025-01-02T03:04:05Z"}'
)
OLD_ROLLBACK = (
    '{"model": "parts", "reason": "regression", "request_id": "cli-2", '
    '"requested_at": "2025-01-02T03:04:05Z"}'
)


def test_payloads_from_before_the_expected_version_still_validate_unchecked() -> None:
    promote = PromoteVersionRequest.model_validate_json(OLD_PROMOTE)
    rollback = RollbackRequest.model_validate_json(OLD_ROLLBACK)
    assert promote.expected_production is None and rollback.expected_production is None
    assert expectation_of(promote.expected_production) is UNCHECKED


@pytest.mark.parametrize(("given", "expected"), [(2, 2), ("none", None)])
def test_expected_production_is_a_version_or_none(given: int | str, expected: int | None) -> None:
    request = PromoteVersionRequest.model_validate_json(
        OLD_PROMOTE[:-1] + f', "expected_production": {given!r}}}'.replace("'", '"')
    )
    assert request.expected_production == given
    assert expectation_of(request.expected_production) == expected


@pytest.mark.parametrize("bad", [0, -1, '"latest"', '"v2"'])
def test_anything_else_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="expected_production"):
        PromoteVersionRequest.model_validate_json(
            OLD_PROMOTE[:-1] + f', "expected_production": {bad}}}'
        )
    with pytest.raises(ValidationError, match="expected_production"):
        RollbackRequest.model_validate_json(OLD_ROLLBACK[:-1] + f', "expected_production": {bad}}}')
