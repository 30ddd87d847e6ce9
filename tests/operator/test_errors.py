"""The operator's errors: what each says, and which API answers are refusals (not retried)."""

from __future__ import annotations

import pytest
from trtforge_operator.errors import (
    AutoscalingError,
    ChildConflictError,
    KubeApiError,
    MetricsError,
    OperatorError,
    SettingsError,
    UnworkableSpecError,
)
from trtforge_runtime.errors import ManifestError, TrtforgeError


def test_an_unworkable_spec_names_its_field_and_is_a_manifest_error() -> None:
    err = UnworkableSpecError("spec.serving.autoscaling.mode", "keda is not enabled")
    assert str(err) == "spec.serving.autoscaling.mode: keda is not enabled"
    assert err.field == "spec.serving.autoscaling.mode"
    assert isinstance(err, ManifestError) and isinstance(err, OperatorError)
    assert err.exit_code == ManifestError.exit_code


@pytest.mark.parametrize(("status", "refused"), [(400, True), (403, True), (413, True), (422, True),
                                                 (404, False), (409, False), (429, False), (500, False),
                                                 (503, False)])  # fmt: skip
def test_api_errors_the_server_refused_are_not_retried(status: int, refused: bool) -> None:
    err = KubeApiError(status, "the message")
    assert str(err) == f"Kubernetes API error {status}: the message"
    assert err.status == status and err.refused is refused


def test_exit_codes_and_bases() -> None:
    assert SettingsError("x").exit_code == 2
    assert AutoscalingError("x").exit_code == 10 and AutoscalingError("x").http_status == 422
    assert issubclass(MetricsError, AutoscalingError)
    for cls in (SettingsError, KubeApiError, ChildConflictError, AutoscalingError):
        assert issubclass(cls, OperatorError) and issubclass(cls, TrtforgeError)
