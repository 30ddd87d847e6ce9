"""The one error base class of the operator package, and what each error becomes for a ModelDeployment.

Every expected failure of the operator raises a subclass of `OperatorError`, itself a
`trtforge_runtime.errors.TrtforgeError`, so the CLI (`trtforge operator ...`) prints its message and exits
with its `exit_code` like any other command. In the ModelDeployment's status (decided in one place,
`Pipeline._reconcile`, the `except` clauses around a reconcile):

- `UnworkableSpecError` (like any `ManifestError`) -> phase Failed, reason `InvalidSpec`; not retried
  until the spec changes;
- `ChildConflictError` -> phase Failed, reason `ChildConflict`; not retried until the spec changes;
- `KubeApiError` that the API server refused (`refused`: 400, 403, 413, 422 on a child) -> phase Failed,
  reason `InvalidSpec`, with the API server's message, and an Event; not retried with back-off;
- anything else (other `KubeApiError`s, network trouble...) -> no status change; the controller retries
  the reconcile with exponential back-off.

`SettingsError` stops the operator at start-up. `AutoscalingError` (and `MetricsError`) are reported by
the autoscaling loop, which logs them once and tries again at the next tick; status is not touched. An
hpa / keda child the cluster cannot make (no KEDA) keeps the ModelDeployment serving with `Degraded`
(reason `AutoscalingUnavailable`).
"""

from __future__ import annotations

from trtforge_runtime.errors import ManifestError, TrtforgeError


class OperatorError(TrtforgeError):
    """Base of every expected failure of the operator: the message is for the user."""


class SettingsError(OperatorError):
    """An operator environment variable has an invalid value."""

    exit_code = 2


class UnworkableSpecError(OperatorError, ManifestError):
    """The schema allows the spec, but the operator cannot run it; `field` is the offending path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class KubeApiError(OperatorError):
    """The API answered an unexpected error (transient ones are retried by the reconcile loop)."""

    # The API server refuses the request itself (a body it cannot decode, an invalid object, forbidden,
    # too large): sending it again cannot succeed, so it is a spec the cluster will not run, not a
    # reason to retry. 404 (a namespace going away), 409 (conflicts), 429 and 5xx are transient.
    REFUSED = frozenset({400, 403, 413, 422})

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API error {status}: {message}")
        self.status = status

    @property
    def refused(self) -> bool:
        return self.status in self.REFUSED


class ChildConflictError(OperatorError):
    """A child's name is taken by an object the ModelDeployment does not own."""


class AutoscalingError(OperatorError):
    """An autoscaler configuration that cannot work (bounds, target, windows) or a child it cannot render."""

    exit_code = 10
    http_status = 422


class MetricsError(AutoscalingError):
    """A pod's /metrics answer lacks a usable value of the metric the autoscaler needs."""
