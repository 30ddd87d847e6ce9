"""The one error base class of the runtime package, and how errors map to exit codes and HTTP.

Everything the user can cause (a bad manifest, a missing dataset, a failed gate, a malformed request)
raises a subclass of `TrtforgeError` with a message that names what is wrong; the CLI prints the message
(no traceback) and exits with `exit_code`; the serving front ends answer `http_status`.
"""

from __future__ import annotations


class TrtforgeError(Exception):
    """Base of every expected failure: the message is for the user."""

    exit_code = 1
    http_status = 500


class ManifestError(TrtforgeError):
    """The manifest is not YAML, not a ModelDeployment, or violates the schema."""

    exit_code = 2
    http_status = 400


class DatasetError(TrtforgeError):
    """A dataset is missing, unreadable or has the wrong shape."""

    exit_code = 3
    http_status = 400


class QualityGateError(TrtforgeError):
    """Training finished below spec.model.train.minAccuracy."""

    exit_code = 4
    http_status = 422


class TrainingError(TrtforgeError):
    """Training cannot run as configured (e.g. an invalid TF_CONFIG for multi-worker training)."""

    exit_code = 9
    http_status = 422


class ArtifactError(TrtforgeError):
    """An output folder would be overwritten, or an input artifact is missing or corrupt."""

    exit_code = 5
    http_status = 409


class OutputConflictError(ArtifactError):
    """The output folder already holds a different artifact (another model or spec); it is left untouched."""


class RemoteStorageError(ArtifactError):
    """A remote artifact URI (s3://, memory://...) is unreachable, missing, incomplete or denied."""


class ConversionError(TrtforgeError):
    """A model cannot be converted or an engine cannot be built."""

    exit_code = 6
    http_status = 422


class AccuracyGateError(ConversionError):
    """A converted network disagrees with the fp32 reference beyond engine.accuracy.maxTop1Drop."""

    exit_code = 7


class UnsupportedTargetError(ConversionError):
    """A compute capability (GPU architecture) the chosen backend cannot build for or run on."""


class LibraryMissingError(TrtforgeError):
    """A backend library (tensorrt, tensorrt_rtx, onnxruntime...) is not installed in this image."""

    exit_code = 6
    http_status = 503


class InferenceError(TrtforgeError):
    """A malformed or invalid inference request (bad tensor name, shape, datatype...)."""

    exit_code = 8
    http_status = 400


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
