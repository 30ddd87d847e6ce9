"""The one error base class of the runtime package, and the one failure table derived from it.

Everything the user can cause (a bad manifest, a missing dataset, a failed gate, a malformed request)
raises a subclass of `TrtforgeError` with a message that names what is wrong; the CLI prints the message
(no traceback) and exits with `exit_code`; the serving front ends answer `http_status`.

Each class also says what its exit code means to the cluster: `reason` (the CamelCase reason the
operator writes into the ModelDeployment's status when a stage's pod exits with that code) and
`permanent` (True: retrying cannot help, the Job fails at once through its podFailurePolicy; False: the
Job's backoffLimit retries it). `failure_table()` collects these into exit code -> `Failure`; the CLI's
exit codes, the operator's status reasons and the Jobs' podFailurePolicy are all read from it.
"""

from __future__ import annotations

from dataclasses import dataclass


class TrtforgeError(Exception):
    """Base of every expected failure: the message is for the user."""

    exit_code = 1
    http_status = 500
    reason = "Error"
    permanent = False


class ManifestError(TrtforgeError):
    """The manifest is not YAML, not a ModelDeployment, or violates the schema."""

    exit_code = 2
    http_status = 400
    reason = "InvalidManifest"
    permanent = True


class DatasetError(TrtforgeError):
    """A dataset is missing, unreadable or has the wrong shape."""

    exit_code = 3
    http_status = 400
    reason = "DatasetError"
    permanent = True


class QualityGateError(TrtforgeError):
    """Training finished below spec.model.train.minAccuracy."""

    exit_code = 4
    http_status = 422
    reason = "QualityGateFailed"
    permanent = True


class TrainingError(TrtforgeError):
    """Training cannot run as configured (e.g. an invalid TF_CONFIG for multi-worker training)."""

    exit_code = 9
    http_status = 422
    reason = "TrainingFailed"
    permanent = True


class TrainingKilledError(TrainingError):
    """Custom training code was killed by a signal from outside it: SIGKILL (in a pod almost always the
    kernel's OOM killer at the container's memory limit), SIGTERM or SIGINT. Not a bug in the code the way
    a crash is: like Kubernetes for an OOMKilled container and Kubeflow's training operator for exit codes
    137/143/130, the Job's backoffLimit retries it (`trtforge_runtime.train.child` decides and words it)."""

    exit_code = 12
    reason = "TrainingKilled"
    permanent = False


class ArtifactError(TrtforgeError):
    """An output folder would be overwritten, or an input artifact is missing or corrupt."""

    exit_code = 5
    http_status = 409
    reason = "ArtifactError"
    permanent = True


class OutputConflictError(ArtifactError):
    """The output folder already holds a different artifact (another model or spec); it is left untouched."""


class RemoteStorageError(ArtifactError):
    """A remote artifact URI (s3://, memory://...) is missing, incomplete, corrupt or denied.

    Retrying cannot fix these (no such object or bucket, access denied, bad credentials, a folder
    without its completion marker): the Job fails at once, like any `ArtifactError`.
    """


class RemoteStorageUnavailableError(RemoteStorageError):
    """The remote store did not answer usably this time: a connection refused or reset, a time-out,
    throttling (SlowDown), a 5xx, or an artifact that changed while it was read. Another attempt may
    succeed, so the Job's backoffLimit retries it (`trtforge_runtime.remote.transient` decides)."""

    exit_code = 11
    http_status = 503
    reason = "RemoteStorageUnavailable"
    permanent = False


class ConversionError(TrtforgeError):
    """A model cannot be converted or an engine cannot be built."""

    exit_code = 6
    http_status = 422
    reason = "ConversionFailed"
    permanent = True


class AccuracyGateError(ConversionError):
    """A converted network disagrees with the fp32 reference beyond engine.accuracy.maxTop1Drop."""

    exit_code = 7
    reason = "AccuracyGateFailed"
    permanent = True


class UnsupportedTargetError(ConversionError):
    """A compute capability (GPU architecture) the chosen backend cannot build for or run on."""


class LibraryMissingError(TrtforgeError):
    """A backend library (tensorrt, tensorrt_rtx, onnxruntime...) is not installed in this image."""

    exit_code = 6
    http_status = 503
    reason = "ConversionFailed"
    permanent = True


class InferenceError(TrtforgeError):
    """A malformed or invalid inference request (bad tensor name, shape, datatype...)."""

    exit_code = 8
    http_status = 400
    reason = "InvalidRequest"
    permanent = True


class ModelNotFoundError(InferenceError):
    http_status = 404


class PayloadTooLargeError(InferenceError):
    http_status = 413


class OverloadedError(InferenceError):
    """The batching queue is full: answered at once instead of queueing without bound."""

    http_status = 503


class NotReadyError(InferenceError):
    http_status = 503


class RequestTimeoutError(InferenceError):
    http_status = 504


class BackendError(InferenceError):
    """The inference backend failed while running a (batched) request: a server-side error."""

    http_status = 500


# ---------------------------------------------------------------------- the failure table


@dataclass(frozen=True)
class Failure:
    """What an exit code of a trtforge command means: the status reason and whether to retry."""

    exit_code: int
    reason: str
    permanent: bool
    errors: tuple[str, ...]  # the classes that exit with this code


def _subclasses(cls: type[TrtforgeError]) -> list[type[TrtforgeError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def failure_table() -> dict[int, Failure]:
    """Exit code -> Failure, for every error class of the runtime package (the stages' commands).

    Exit code 1 (the base class, and any unexpected Python exception) is transient. Classes that share
    an exit code must agree on reason and permanence: a disagreement is a programming error.
    """
    table: dict[int, Failure] = {}
    for cls in _subclasses(TrtforgeError):
        if cls.__module__ != __name__:
            continue  # other packages' errors (the operator's) never end a stage's pod
        old = table.get(cls.exit_code)
        if old is not None and (old.reason, old.permanent) != (cls.reason, cls.permanent):
            raise AssertionError(
                f"{cls.__name__} exits {cls.exit_code} like {old.errors[0]} but as "
                f"{cls.reason}/{cls.permanent} instead of {old.reason}/{old.permanent}"
            )
        errors = (*old.errors, cls.__name__) if old else (cls.__name__,)
        table[cls.exit_code] = Failure(cls.exit_code, cls.reason, cls.permanent, errors)
    return dict(sorted(table.items()))


def permanent_exit_codes() -> list[int]:
    """Exit codes that retrying cannot fix: a Job fails at once on them (podFailurePolicy FailJob)."""
    return [code for code, failure in failure_table().items() if failure.permanent]


def exit_code_reasons() -> dict[int, str]:
    """Exit code -> status reason, for the codes that say more than "Error" (1)."""
    return {code: f.reason for code, f in failure_table().items() if code != TrtforgeError.exit_code}
