"""The ModelDeployment API as typed models: the one source of truth for the CRD schema.

Every field carries its description, bounds and default here; `trtforge_runtime.spec.crd` turns these
models into the CRD's openAPIV3Schema (`python -m trtforge_runtime.spec.crd --write`) and a test fails
when the checked-in CRD is stale. Cross-field rules exist twice by necessity, as a pydantic validator
(for `trtforge train/convert/local` without a cluster) and as a CEL rule (for the API server), and both
are declared side by side in the same class so they cannot drift apart unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from trtforge_runtime.spec import rules as spec_rules
from trtforge_runtime.spec.rules import Rule, ordered_range_rule

GROUP = "trtforge.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]

QUANTITY_PATTERN = spec_rules.QUANTITY  # the exact Kubernetes quantity grammar, without a sign
DATASET_URI_PATTERN = r"^(builtin://[a-z0-9_-]+|file://.+|pvc://.+|s3://.+|/.+|\./.+|[^:]+)$"
COMPUTE_CAPABILITY_PATTERN = r"^[0-9]+\.[0-9]+$"


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )
    # Cross-field rules, each once for both the API server (CEL) and pydantic (spec/rules.py).
    rules: ClassVar[tuple[Rule, ...]] = ()
    # CEL rules written next to a pydantic validator of the same class (prefer `rules`).
    cel_rules: ClassVar[list[dict[str, str]]] = []

    @model_validator(mode="after")
    def _check_rules(self) -> Any:
        spec_rules.check_rules(self, type(self).rules)
        return self


def quantity(description: str, default: str | int | None) -> Any:
    return Field(
        default=default,
        description=description,
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN},
    )


# --------------------------------------------------------------------------------------------- training


class LayerType(StrEnum):
    DENSE = "Dense"
    DROPOUT = "Dropout"
    BATCH_NORMALIZATION = "BatchNormalization"
    FLATTEN = "Flatten"
    RESHAPE = "Reshape"
    CONV2D = "Conv2D"
    MAX_POOLING2D = "MaxPooling2D"
    AVERAGE_POOLING2D = "AveragePooling2D"
    GLOBAL_AVERAGE_POOLING2D = "GlobalAveragePooling2D"


class Activation(StrEnum):
    LINEAR = "linear"
    RELU = "relu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    SOFTMAX = "softmax"
    GELU = "gelu"
    SWISH = "swish"
    ELU = "elu"


class Layer(Model):
    """One Keras layer. Only the fields that apply to `type` may be set."""

    type: LayerType = Field(description="Keras layer class.")
    units: int | None = Field(default=None, ge=1, le=1_000_000, description="Dense: output width.")
    activation: Activation | None = Field(
        default=None, description="Dense/Conv2D: activation function (default linear)."
    )
    rate: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="Dropout: fraction of units dropped."
    )
    filters: int | None = Field(default=None, ge=1, le=65536, description="Conv2D: number of filters.")
    kernel_size: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="Conv2D: kernel height and width, e.g. [3, 3]."
    )
    strides: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="Conv2D/pooling: strides, e.g. [1, 1]."
    )
    padding: Literal["valid", "same"] | None = Field(
        default=None, description="Conv2D/pooling: padding mode (default valid)."
    )
    pool_size: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="Pooling: window, e.g. [2, 2]."
    )
    target_shape: list[int] | None = Field(
        default=None, min_length=1, max_length=8, description="Reshape: shape without the batch dimension."
    )
    momentum: float | None = Field(default=None, gt=0.0, lt=1.0, description="BatchNormalization: momentum.")
    epsilon: float | None = Field(default=None, gt=0.0, le=1.0, description="BatchNormalization: epsilon.")

    # layer type -> the fields it needs, and the fields it takes: the Layer rules are generated from these
    REQUIRED: ClassVar[dict[str, tuple[str, ...]]] = {
        "Dense": ("units",),
        "Dropout": ("rate",),
        "Conv2D": ("filters", "kernel_size"),
        "Reshape": ("target_shape",),
    }
    ALLOWED: ClassVar[dict[str, tuple[str, ...]]] = {
        "Dense": ("units", "activation"),
        "Dropout": ("rate",),
        "BatchNormalization": ("momentum", "epsilon"),
        "Flatten": (),
        "Reshape": ("target_shape",),
        "Conv2D": ("filters", "kernel_size", "strides", "padding", "activation"),
        "MaxPooling2D": ("pool_size", "strides", "padding"),
        "AveragePooling2D": ("pool_size", "strides", "padding"),
        "GlobalAveragePooling2D": (),
    }


def _layer_rules() -> tuple[Rule, ...]:
    """A type's required fields must be set; a field may be set only on the types that take it."""

    def needs(kind: str, names: tuple[str, ...]) -> Callable[[Any], bool]:
        return lambda layer: str(layer.type) != kind or all(getattr(layer, n) is not None for n in names)

    def takes(name: str, kinds: list[str]) -> Callable[[Any], bool]:
        return lambda layer: getattr(layer, name) is None or str(layer.type) in kinds

    def refusal(field: str) -> Callable[[Any], str]:
        return lambda layer: f"{field} does not apply to a {layer.type} layer"

    out = []
    for kind, names in Layer.REQUIRED.items():
        fields = [to_camel(n) for n in names]
        out.append(
            Rule(
                cel=f"self.type != '{kind}' || " + " && ".join(f"has(self.{f})" for f in fields),
                message=f"a {kind} layer needs {' and '.join(fields)}",
                check=needs(kind, names),
            )
        )
    for name in Layer.model_fields:
        if name == "type":
            continue
        kinds = [k for k, allowed in Layer.ALLOWED.items() if name in allowed]
        field = to_camel(name)
        out.append(
            Rule(
                cel=f"!has(self.{field}) || self.type in [{', '.join(repr(k) for k in kinds)}]",
                message=f"{field} applies only to {' and '.join(kinds)} layers",
                message_expression=f"'{field} does not apply to a ' + self.type + ' layer'",
                check=takes(name, kinds),
                describe=refusal(field),
            )
        )
    return tuple(out)


Layer.rules = _layer_rules()


class Architecture(Model):
    """The network, as a sequence of Keras layers after a named input."""

    input_name: str = Field(
        default="input",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the model's input tensor (also the ONNX input name and the V2 input name).",
    )
    input_shape: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="Input shape without the batch dimension; taken from the dataset when omitted.",
    )
    output_name: str = Field(
        default="output",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the model's output tensor.",
    )
    layers: list[Layer] = Field(min_length=1, max_length=256, description="Layers in order.")


class DatasetFormat(StrEnum):
    AUTO = "auto"
    NPZ = "npz"
    CSV = "csv"


class Dataset(Model):
    """Where the training data comes from and how it is split."""

    uri: str = Field(
        pattern=DATASET_URI_PATTERN,
        description=(
            "builtin://digits (scikit-learn's bundled digits), a local path or file://, pvc://CLAIM/PATH "
            "(the artifact volume mounted in the Job), or s3://BUCKET/KEY (needs the s3 extra)."
        ),
    )
    format: DatasetFormat = Field(
        default=DatasetFormat.AUTO, description="File format; auto picks it from the file extension."
    )
    features: str = Field(
        default="x",
        min_length=1,
        description="npz: array key of the features (a model of several inputs: one array per input under "
        "<features>.<input>, e.g. x.image); csv: unused.",
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        description="npz: array key of the labels (default y); csv: the label column (default label).",
    )
    validation_split: float = Field(
        default=0.2, gt=0.0, lt=0.9, description="Fraction of the training rows held out for validation."
    )
    test_split: float = Field(
        default=0.2, gt=0.0, lt=0.9, description="Fraction of all rows held out for the final test accuracy."
    )
    normalize: Literal["none", "max", "standard"] = Field(
        default="max",
        description="Feature scaling folded into the model: none, divide by training max, or standardize.",
    )


class Optimizer(StrEnum):
    ADAM = "adam"
    ADAMW = "adamw"
    SGD = "sgd"
    RMSPROP = "rmsprop"


class Loss(StrEnum):
    SPARSE_CATEGORICAL_CROSSENTROPY = "sparse_categorical_crossentropy"
    CATEGORICAL_CROSSENTROPY = "categorical_crossentropy"
    BINARY_CROSSENTROPY = "binary_crossentropy"
    MSE = "mean_squared_error"
    MAE = "mean_absolute_error"
    HUBER = "huber"


class Task(StrEnum):
    """What the model predicts; it decides the losses that apply and the metric of both quality gates."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    MULTILABEL = "multilabel"


# The losses each task trains with; the first is the default when spec.model.train.loss is not set.
TASK_LOSSES: dict[str, tuple[str, ...]] = {
    Task.CLASSIFICATION: (
        Loss.SPARSE_CATEGORICAL_CROSSENTROPY,
        Loss.CATEGORICAL_CROSSENTROPY,
        Loss.BINARY_CROSSENTROPY,
    ),
    Task.REGRESSION: (Loss.MSE, Loss.MAE, Loss.HUBER),
    Task.MULTILABEL: (Loss.BINARY_CROSSENTROPY,),
}


def _loss_rule(task: str, losses: tuple[str, ...]) -> Rule:
    """spec.model: a model of `task` trains with one of `losses` (when train.loss is set)."""
    names = " or ".join(losses)
    return Rule(
        cel=f"self.task != '{task}' || !has(self.train) || !has(self.train.loss) "
        f"|| self.train.loss in [{', '.join(spec_rules.cel_string(v) for v in losses)}]",
        message=f"task {task} trains with loss {names}",
        check=lambda m: m.task != task or m.train is None or m.train.loss is None or m.train.loss in losses,
        describe=lambda m: f"task {task} trains with loss {names}; train.loss is {m.train.loss}",
    )


class Resources(Model):
    """Compute for one pod."""

    gpus: int = Field(default=0, ge=0, le=16, description="NVIDIA GPUs (nvidia.com/gpu limit).")
    cpu: str | int = quantity("CPU request and limit, a Kubernetes quantity such as 4 or 500m.", "1")
    memory: str | int = quantity("Memory request and limit, a Kubernetes quantity such as 4Gi.", "2Gi")

    # A zero limit is no limit to the kubelet (and 0 requests make the pod BestEffort): refused.
    rules: ClassVar[tuple[Rule, ...]] = (
        spec_rules.quantity_rule("cpu", "cpu"),
        spec_rules.quantity_rule("memory", "memory"),
    )


ENTRY_POINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
TENSOR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class CustomTraining(Model):
    """The user's own training code (docs/training.md, "Custom training code", has the contract).

    It runs as a child process of `trtforge train` with $TRTFORGE_OUTPUT_DIR (an empty folder to write a
    SavedModel or a .keras file into), $TRTFORGE_DATA (the train/validation rows as .npz) and
    $TRTFORGE_SPEC; trtforge then exports, checks and gates the model like a declarative one.
    """

    image: str | None = Field(
        default=None,
        min_length=1,
        description="Image of the training Job (in a cluster); it must contain trtforge, e.g. built FROM "
        "the trainer image. Default: the operator's trainer image.",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Command run in the code folder, e.g. [python, train.py] (exclusive with entryPoint).",
    )
    entry_point: str | None = Field(
        default=None,
        pattern=ENTRY_POINT_PATTERN,
        description="module:function called with a trtforge_runtime.train.custom.Context; it writes the "
        "model or returns a Keras model (exclusive with command).",
    )
    code: str | None = Field(
        default=None,
        min_length=1,
        description="File or folder holding the code, copied into a fresh working folder: a path relative "
        "to the manifest's folder, file://, pvc://CLAIM/PATH or s3://. Default: the image's own files.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment of the code.")
    timeout_seconds: int = Field(
        default=3600, ge=1, le=2_592_000, description="The code is stopped and the stage fails after this."
    )
    input_name: str | None = Field(
        default=None,
        pattern=TENSOR_NAME_PATTERN,
        description="Name of the served input (default: the model's own input name).",
    )
    output_name: str | None = Field(
        default=None,
        pattern=TENSOR_NAME_PATTERN,
        description="Name of the served output (default: the model's own output name).",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.command) != has(self.entryPoint)",
            message="custom needs exactly one of command or entryPoint",
            check=lambda c: (c.command is None) != (c.entry_point is None),
        ),
    )


class Train(Model):
    """Train a Keras model on a dataset: from a layer list (architecture) or with the user's code (custom)."""

    dataset: Dataset | None = Field(
        default=None,
        description="Training data; its test split is held out for the quality gate. Needed by "
        "architecture; custom code without it brings its own data and held-out rows (samples.npz).",
    )
    architecture: Architecture | None = Field(
        default=None, description="The network as a layer list (exclusive with custom)."
    )
    custom: CustomTraining | None = Field(
        default=None, description="The user's own training code (exclusive with architecture)."
    )
    optimizer: Optimizer = Field(default=Optimizer.ADAM, description="Keras optimizer.")
    learning_rate: float = Field(default=0.001, gt=0.0, le=10.0, description="Optimizer learning rate.")
    loss: Loss | None = Field(
        default=None,
        description="Keras loss; default per spec.model.task: sparse_categorical_crossentropy "
        "(classification), mean_squared_error (regression), binary_crossentropy (multilabel).",
    )
    epochs: int = Field(default=10, ge=1, le=100_000, description="Training epochs.")
    batch_size: int = Field(default=32, ge=1, le=1_048_576, description="Global mini-batch size.")
    seed: int = Field(
        default=42,
        ge=0,
        le=2**31 - 1,
        description="Seed for splits, initialisation and shuffling (determinism).",
    )
    min_accuracy: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Quality gate (classification: top-1, multilabel: per-label accuracy): minimum test "
        "accuracy, else training fails.",
    )
    max_mae: float | None = Field(
        default=None, ge=0.0, description="Quality gate (regression): largest test mean absolute error."
    )
    min_r2: float | None = Field(
        default=None, ge=-1e9, le=1.0, description="Quality gate (regression): smallest test R²."
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Training pods; more than 1 runs MultiWorkerMirroredStrategy."
    )
    resources: Resources = Field(default_factory=lambda: Resources(gpus=1), description="Per-worker compute.")
    active_deadline_seconds: int = Field(
        default=86_400, ge=60, le=2_592_000, description="The training Job's activeDeadlineSeconds."
    )
    backoff_limit: int = Field(default=2, ge=0, le=100, description="Retries of a failed training pod.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.architecture) != has(self.custom)",
            message="train needs exactly one of architecture or custom",
            check=lambda t: (t.architecture is None) != (t.custom is None),
        ),
        Rule(
            cel="has(self.dataset) || has(self.custom)",
            message="train.architecture needs train.dataset (only custom code may bring its own data)",
            check=lambda t: t.dataset is not None or t.custom is not None,
        ),
        # Both fields have defaults, which the API server applies before it runs the rules
        # (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting).
        Rule(
            cel="!has(self.custom) || self.custom.timeoutSeconds < self.activeDeadlineSeconds",
            message="train.custom.timeoutSeconds must be less than train.activeDeadlineSeconds (else the "
            "Job's deadline stops the pod first and the failure cannot name the code)",
            check=lambda t: t.custom is None or t.custom.timeout_seconds < t.active_deadline_seconds,
            describe=lambda t: (
                "train.custom.timeoutSeconds must be less than train.activeDeadlineSeconds "
                f"(else the Job's deadline stops the pod first and the failure cannot name the code), got "
                f"{t.custom.timeout_seconds} and {t.active_deadline_seconds}"
            ),
        ),
    )


class SourceFormat(StrEnum):
    ONNX = "onnx"
    SAVEDMODEL = "savedmodel"
    KERAS = "keras"


class Source(Model):
    """An already trained model to convert and serve."""

    uri: str = Field(
        min_length=1,
        description="Path (relative to the manifest), file://, pvc:// or s3:// URI of an ONNX file, "
        "SavedModel or .keras file.",
    )
    format: SourceFormat = Field(
        description="onnx (a .onnx file), savedmodel (a SavedModel folder) or keras (a Keras 3 .keras file)."
    )
    signature: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The SavedModel's serving signature to convert (default: serving_default); "
        "savedmodel sources only.",
    )
    input_name: str | None = Field(
        default=None, description="Input tensor to serve (default: the model's first input)."
    )
    output_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_:./-]*$",
        description="Output tensor to serve: an output of the model, or the new name of its only output "
        "(default: the model's first output, under the name the model gives it).",
    )
    dataset: Dataset | None = Field(
        default=None,
        description="Representative data for int8 calibration and the accuracy gate (needed for int8); "
        "for a model of several inputs an .npz with one array per input (x.<input>) and the labels.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.signature) || self.format == 'savedmodel'",
            message="signature applies to savedmodel sources only",
            check=lambda s: s.signature is None or s.format == SourceFormat.SAVEDMODEL,
        ),
    )


class ModelSection(Model):
    """Exactly one of train or source, and the task the model performs."""

    task: Task = Field(
        default=Task.CLASSIFICATION,
        description="classification (top-1), regression (an error metric) or multilabel (sigmoid outputs, "
        "one decision per label at 0.5); it picks the metric of the training and the conversion gate.",
    )
    train: Train | None = Field(default=None, description="Train the model (mutually exclusive with source).")
    source: Source | None = Field(
        default=None, description="Use a trained model (mutually exclusive with train)."
    )

    cel_rules: ClassVar[list[dict[str, str]]] = [
        {
            "rule": "has(self.train) != has(self.source)",
            "message": "exactly one of train or source must be set",
        },
    ]
    rules: ClassVar[tuple[Rule, ...]] = (
        *(_loss_rule(task, losses) for task, losses in TASK_LOSSES.items()),
        Rule(
            cel="self.task == 'regression' || !has(self.train) "
            "|| (!has(self.train.maxMae) && !has(self.train.minR2))",
            message="train.maxMae and train.minR2 gate regression models; use minAccuracy",
            check=lambda m: (
                m.task == Task.REGRESSION
                or m.train is None
                or (m.train.max_mae is None and m.train.min_r2 is None)
            ),
        ),
        Rule(
            cel="self.task != 'regression' || !has(self.train) || !has(self.train.minAccuracy) "
            "|| self.train.minAccuracy == 0.0",
            message="train.minAccuracy does not apply to regression; use maxMae or minR2",
            check=lambda m: m.task != Task.REGRESSION or m.train is None or not m.train.min_accuracy,
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSection:
        if (self.train is None) == (self.source is None):
            raise ValueError("exactly one of train or source must be set")
        return self

    @property
    def loss(self) -> str:
        """The training loss: spec.model.train.loss, or the task's default."""
        chosen = self.train.loss if self.train is not None else None
        return str(chosen) if chosen is not None else TASK_LOSSES[str(self.task)][0]


# ----------------------------------------------------------------------------------------------- engine


class Backend(StrEnum):
    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt-rtx"
    ONNXRUNTIME = "onnxruntime"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    BEST = "best"


class BatchProfile(Model):
    """Optimization profile of the dynamic batch dimension."""

    min: int = Field(default=1, ge=1, le=65536, description="Smallest batch the engine accepts.")
    opt: int = Field(default=32, ge=1, le=65536, description="Batch size the engine is tuned for.")
    max: int = Field(default=256, ge=1, le=65536, description="Largest batch the engine accepts.")

    rules: ClassVar[tuple[Rule, ...]] = (ordered_range_rule("batch"),)


class DimensionProfile(Model):
    """Optimization profile of one dimension of an input after the batch dimension."""

    min: int = Field(ge=1, le=1_048_576, description="Smallest size the engine accepts.")
    opt: int = Field(ge=1, le=1_048_576, description="Size the engine is tuned for.")
    max: int = Field(ge=1, le=1_048_576, description="Largest size the engine accepts.")

    rules: ClassVar[tuple[Rule, ...]] = (ordered_range_rule("a dimension profile"),)


class InputProfile(Model):
    """The optimization profile of one model input's dimensions after the batch dimension."""

    name: str = Field(min_length=1, max_length=256, description="The model input (its ONNX / served name).")
    dims: list[DimensionProfile] = Field(
        min_length=1,
        max_length=8,
        description="One entry per dimension after the batch dimension, in order. A dimension the "
        "model leaves dynamic gets its range here; a fixed one must say min = opt = max = its size.",
    )


class AccuracyGate(Model):
    """How much a reduced-precision engine may disagree with the fp32 model (every set bound must hold)."""

    max_top1_drop: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Largest allowed drop in top-1 agreement with fp32."
    )
    max_abs_diff: float | None = Field(
        default=0.1,
        ge=0.0,
        description="Largest allowed absolute difference of any output value (e.g. a class probability) "
        "from fp32 on the gate rows; null turns the bound off.",
    )
    max_mean_kl: float | None = Field(
        default=None,
        ge=0.0,
        description="Largest allowed mean KL divergence KL(fp32 || candidate) in nats over the gate rows; "
        "needs outputs that are probability distributions (softmax); null (default) turns it off.",
    )
    samples: int = Field(default=512, ge=1, le=1_000_000, description="Held-out rows the gate evaluates.")
    min_r2: float | None = Field(
        default=None,
        ge=-1e9,
        le=1.0,
        description="Regression: smallest R² of the engine's outputs against the fp32 model's "
        "(default 0.999).",
    )
    max_mae: float | None = Field(
        default=None,
        ge=0.0,
        description="Regression: largest mean absolute difference from the fp32 outputs, in target units "
        "(unset: not checked).",
    )
    max_label_disagreement: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Multilabel: largest fraction of (row, label) decisions at 0.5 that differ from fp32 "
        "(default 0.01).",
    )


class CalibrationMethod(StrEnum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Calibration(Model):
    """How int8 quantization scales are calibrated (onnxruntime's calibrators)."""

    method: CalibrationMethod = Field(
        default=CalibrationMethod.MINMAX,
        description="minmax (largest absolute value seen), entropy (KL-optimal threshold) or percentile "
        "(the `percentile`-th percentile of absolute values).",
    )
    rows: int = Field(
        default=1024, ge=16, le=1_000_000, description="Most calibration rows (training rows) used."
    )
    percentile: float = Field(
        default=99.99, gt=50.0, le=100.0, description="percentile method: the percentile kept."
    )


class Engine(Model):
    """How the model becomes an engine."""

    backend: Backend = Field(
        default=Backend.TENSORRT,
        description="tensorrt (built on each target GPU), tensorrt-rtx (built ahead of time on CPU) or "
        "onnxruntime. The onnxruntime artifact is always built too, as the fallback.",
    )
    precision: Precision = Field(
        default=Precision.FP16, description="fp32, fp16, int8, or best (lowest precision passing the gate)."
    )
    batch: BatchProfile = Field(default_factory=BatchProfile, description="Dynamic batch profile.")
    inputs: list[InputProfile] = Field(
        default_factory=list,
        max_length=32,
        description="Profiles of the inputs' dynamic dimensions after the batch dimension (sequence "
        "length, image size), per input; checked against the model. Inputs not listed have fixed "
        "dimensions after the batch.",
    )
    accuracy: AccuracyGate = Field(default_factory=AccuracyGate, description="Accuracy gate.")
    calibration: Calibration = Field(
        default_factory=Calibration, description="int8 calibration (used by int8 and best)."
    )
    compute_capabilities: list[str] = Field(
        default_factory=lambda: ["8.9"],
        min_length=1,
        max_length=16,
        description="GPU compute capabilities to build engines for, e.g. ['8.0', '8.9'].",
        json_schema_extra={
            "items": {"type": "string", "pattern": COMPUTE_CAPABILITY_PATTERN},
            "x-kubernetes-list-type": "set",
        },
    )
    workspace_mib: int = Field(
        default=2048, ge=64, le=1_048_576, description="Builder workspace memory-pool limit in MiB."
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(gpus=1), description="Conversion Job compute."
    )

    @model_validator(mode="after")
    def _capabilities(self) -> Engine:
        import re

        for cc in self.compute_capabilities:
            if not re.match(COMPUTE_CAPABILITY_PATTERN, cc):
                raise ValueError(f"compute capability {cc!r} is not of the form MAJOR.MINOR")
        if len(set(self.compute_capabilities)) != len(self.compute_capabilities):
            raise ValueError("computeCapabilities has duplicates")
        return self


# ---------------------------------------------------------------------------------------------- serving


class AutoscalingMode(StrEnum):
    BUILTIN = "builtin"
    HPA = "hpa"
    KEDA = "keda"


class AutoscalingMetric(StrEnum):
    CONCURRENCY = "concurrency"
    RPS = "rps"


class Autoscaling(Model):
    """Scaling of serving pods on load."""

    enabled: bool = Field(default=True, description="Scale on load; false keeps serving.replicas.")
    mode: AutoscalingMode = Field(
        default=AutoscalingMode.BUILTIN, description="builtin (the operator), hpa, or keda."
    )
    min_replicas: int = Field(default=1, ge=1, le=1000, description="Lower bound of replicas.")
    max_replicas: int = Field(default=8, ge=1, le=1000, description="Upper bound of replicas.")
    metric: AutoscalingMetric = Field(
        default=AutoscalingMetric.CONCURRENCY, description="concurrency (in-flight requests) or rps."
    )
    target: float = Field(default=8.0, gt=0.0, le=1_000_000, description="Per-replica target of the metric.")
    stable_window_seconds: int = Field(
        default=60, ge=1, le=3600, description="Averaging window outside panic."
    )
    panic_window_seconds: int = Field(
        default=6, ge=1, le=3600, description="Short window that triggers panic."
    )
    scale_down_delay_seconds: int = Field(
        default=30, ge=0, le=3600, description="Time a lower recommendation must hold before scaling down."
    )
    tick_seconds: float = Field(default=2.0, ge=0.1, le=60.0, description="Built-in autoscaler period.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must be <= maxReplicas",
            check=lambda a: a.min_replicas <= a.max_replicas,
            describe=lambda a: f"minReplicas must be <= maxReplicas, got {a.min_replicas} > {a.max_replicas}",
        ),
        Rule(
            cel="self.panicWindowSeconds <= self.stableWindowSeconds",
            message="panicWindowSeconds must be <= stableWindowSeconds",
            check=lambda a: a.panic_window_seconds <= a.stable_window_seconds,
        ),
    )


class Batching(Model):
    """Dynamic batching in the runtime."""

    max_batch_size: int = Field(default=64, ge=1, le=65536, description="Most rows merged into one run.")
    max_queue_delay_microseconds: int = Field(
        default=2000, ge=0, le=10_000_000, description="Longest a request waits for others to join its batch."
    )
    max_queue_size: int = Field(
        default=1024, ge=1, le=1_000_000, description="Queued requests beyond which new ones get 503."
    )


class Rollout(Model):
    """Rolling update of serving pods."""

    max_surge: int = Field(default=1, ge=0, le=1000, description="Extra pods during a rollout.")
    max_unavailable: int = Field(
        default=0, ge=0, le=1000, description="Pods that may be down during a rollout."
    )
    progress_deadline_seconds: int = Field(
        default=600, ge=10, le=86_400, description="A revision not ready by then is rolled back."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.maxSurge + self.maxUnavailable > 0",
            message="maxSurge and maxUnavailable cannot both be 0",
            check=lambda r: r.max_surge + r.max_unavailable > 0,
        ),
    )


class Serving(Model):
    """The runtime pods that serve the engine."""

    replicas: int = Field(default=1, ge=0, le=1000, description="Replicas when autoscaling is disabled.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Autoscaling on load.")
    batching: Batching = Field(default_factory=Batching, description="Dynamic batching.")
    resources: Resources = Field(default_factory=lambda: Resources(gpus=1), description="Per-pod compute.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rolling update settings.")
    request_timeout_seconds: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="Per-request timeout in the runtime."
    )
    grpc: bool = Field(default=True, description="Also serve the V2 gRPC protocol on port 8081.")


class Toleration(Model):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = Field(
        default=None,
        max_length=317,
        pattern=spec_rules.QUALIFIED_NAME,
        description="Taint key (a qualified name); empty with Exists matches all.",
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(
        default=None, max_length=63, pattern=spec_rules.LABEL_VALUE, description="Taint value for Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect; empty matches all."
    )
    toleration_seconds: int | None = Field(default=None, ge=0, description="NoExecute: how long to stay.")

    # the API server's own rules for core/v1 Toleration (validation.ValidateTolerations)
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.operator != 'Exists' || !has(self.value) || self.value == ''",
            message="a toleration with operator Exists takes no value",
            check=lambda t: t.operator != "Exists" or not t.value,
        ),
        Rule(
            cel="self.operator == 'Exists' || (has(self.key) && self.key != '')",
            message="a toleration without a key must use operator Exists",
            check=lambda t: t.operator == "Exists" or bool(t.key),
        ),
        Rule(
            cel="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            message="tolerationSeconds applies only to effect NoExecute",
            check=lambda t: t.toleration_seconds is None or t.effect == "NoExecute",
        ),
    )


class Placement(Model):
    """Where pods run."""

    node_selector: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels pods require (keys are qualified names, values label values).",
        json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 63}},
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Taints pods tolerate."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.nodeSelector) || self.nodeSelector.all(k, k.size() <= 317 && k.matches("
            + spec_rules.cel_string(spec_rules.QUALIFIED_NAME)
            + "))",
            message="nodeSelector keys must be qualified names (an optional DNS subdomain prefix and '/', "
            "then at most 63 alphanumerics, '-', '_' or '.')",
            check=lambda p: all(
                len(k) <= 317 and spec_rules.matches(spec_rules.QUALIFIED_NAME, k) for k in p.node_selector
            ),
            field_path=".nodeSelector",
        ),
        Rule(
            cel="!has(self.nodeSelector) || self.nodeSelector.all(k, self.nodeSelector[k].matches("
            + spec_rules.cel_string(spec_rules.LABEL_VALUE)
            + "))",
            message="nodeSelector values must be label values (at most 63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric)",
            check=lambda p: all(
                spec_rules.matches(spec_rules.LABEL_VALUE, v) for v in p.node_selector.values()
            ),
            field_path=".nodeSelector",
        ),
    )


class SecretRef(Model):
    """Reference to a Secret in the ModelDeployment's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=spec_rules.DNS1123_SUBDOMAIN,
        description="Secret name (a DNS-1123 subdomain).",
    )


class Storage(Model):
    """Where artifacts (models, engines) are kept."""

    uri: str = Field(
        default="pvc://trtforge-artifacts/",
        pattern=r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.*|s3://.+|file://.+)$",
        description="pvc://CLAIM/PREFIX (a PersistentVolumeClaim) or s3://BUCKET/PREFIX.",
    )
    secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_ENDPOINT_URL) for s3.",
    )
    retain_on_delete: bool = Field(
        default=True, description="Keep artifacts when the ModelDeployment is deleted."
    )


class ModelDeploymentSpec(Model):
    """Desired state: train (or import) a model, build engines, serve and scale them."""

    model: ModelSection = Field(description="The model: trained here or imported.")
    engine: Engine = Field(default_factory=Engine, description="Engine conversion.")
    serving: Serving = Field(default_factory=Serving, description="Serving runtime.")
    placement: Placement = Field(default_factory=Placement, description="Pod placement.")
    storage: Storage = Field(default_factory=Storage, description="Artifact storage.")
    revision_history_limit: int = Field(
        default=5, ge=1, le=100, description="Serving revisions remembered in status for rollback."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.engine) || !has(self.engine.accuracy) || self.model.task == 'regression' "
            "|| (!has(self.engine.accuracy.minR2) && !has(self.engine.accuracy.maxMae))",
            message="engine.accuracy.minR2 and maxMae gate regression models (spec.model.task)",
            check=lambda s: (
                s.model.task == Task.REGRESSION
                or (s.engine.accuracy.min_r2 is None and s.engine.accuracy.max_mae is None)
            ),
            describe=lambda s: (
                "engine.accuracy.minR2 and maxMae gate regression models "
                f"(spec.model.task); spec.model.task is {s.model.task}"
            ),
        ),
        Rule(
            cel="!has(self.engine) || !has(self.engine.accuracy) || self.model.task == 'multilabel' "
            "|| !has(self.engine.accuracy.maxLabelDisagreement)",
            message="engine.accuracy.maxLabelDisagreement gates multilabel models (spec.model.task)",
            check=lambda s: (
                s.model.task == Task.MULTILABEL or s.engine.accuracy.max_label_disagreement is None
            ),
            describe=lambda s: (
                "engine.accuracy.maxLabelDisagreement gates multilabel models "
                f"(spec.model.task); spec.model.task is {s.model.task}"
            ),
        ),
    )


# ----------------------------------------------------------------------------------------------- status


class Phase(StrEnum):
    PENDING = "Pending"
    TRAINING = "Training"
    CONVERTING = "Converting"
    DEPLOYING = "Deploying"
    READY = "Ready"
    FAILED = "Failed"


class Condition(Model):
    """A Kubernetes-style condition."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    type: Literal["Trained", "EngineBuilt", "Available", "Progressing", "Degraded"] = Field(
        description="Condition type."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(default=None, description="RFC 3339 time of the last change.")
    observed_generation: int | None = Field(default=None, description="Generation the condition is about.")


class ModelStatus(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    uri: str | None = Field(default=None, description="Where the trained model is stored.")
    digest: str | None = Field(default=None, description="sha256 of model.onnx.")
    accuracy: float | None = Field(default=None, description="Test accuracy.")
    revision: str | None = Field(default=None, description="Training revision hash.")


class EngineStatus(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    uri: str | None = Field(default=None, description="Where the engines are stored.")
    backend: str | None = Field(default=None, description="Engine backend.")
    version: str | None = Field(default=None, description="Builder library version.")
    precision: str | None = Field(default=None, description="Precision chosen.")
    compute_capabilities: list[str] | None = Field(default=None, description="Architectures built.")
    size_bytes: int | None = Field(default=None, description="Total engine size.")
    build_seconds: float | None = Field(default=None, description="Build time.")
    top1_drop: float | None = Field(default=None, description="Measured top-1 drop against fp32.")
    revision: str | None = Field(default=None, description="Engine revision hash.")


class RevisionRecord(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    revision: str = Field(description="Serving revision hash.")
    engine_uri: str | None = Field(default=None, description="Engine the revision served.")
    deployed_at: str | None = Field(default=None, description="RFC 3339 time.")
    outcome: str | None = Field(default=None, description="Ready, RolledBack or Superseded.")


class ServingStatus(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    revision: str | None = Field(default=None, description="Serving revision hash.")
    replicas: int | None = Field(default=None, description="Current replicas (scale subresource).")
    ready_replicas: int | None = Field(default=None, description="Ready replicas.")
    desired_replicas: int | None = Field(default=None, description="Replicas the autoscaler wants.")
    selector: str | None = Field(default=None, description="Label selector of the pods (scale subresource).")
    url: str | None = Field(default=None, description="In-cluster V2 endpoint.")
    history: list[RevisionRecord] | None = Field(default=None, description="Last serving revisions.")
    last_good_revision: str | None = Field(default=None, description="Revision to roll back to.")


class ModelDeploymentStatus(Model):
    """Observed state, written by the operator."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    phase: Phase | None = Field(default=None, description="Pipeline phase.")
    reason: str | None = Field(
        default=None, description="Why the phase is Failed (CamelCase, as in the Degraded condition)."
    )
    message: str | None = Field(default=None, description="Detail of the phase.")
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: list[Condition] | None = Field(default=None, description="Conditions.")
    model: ModelStatus | None = Field(default=None, description="The trained model.")
    engine: EngineStatus | None = Field(default=None, description="The engines.")
    serving: ServingStatus | None = Field(default=None, description="The serving rollout.")


class ObjectMeta(BaseModel):
    """The parts of metadata a manifest may carry (the rest is the API server's)."""

    model_config = ConfigDict(extra="allow")

    # NAME_RULES (below, shared with the CRD) say what a name may be: the Service is named like the object
    name: str = Field(min_length=1)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelDeployment(BaseModel):
    """A whole ModelDeployment manifest."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: Literal["trtforge.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ModelDeployment"]
    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None

    @model_validator(mode="after")
    def _name(self) -> ModelDeployment:
        spec_rules.check_rules(self, NAME_RULES)
        return self


# Rules on metadata.name, for the CRD's root schema (CEL may read metadata.name there). The pydantic
# twin is ObjectMeta.name's pattern and max_length, built from the same constants.
NAME_RULES: tuple[Rule, ...] = (
    Rule(
        cel=f"self.metadata.name.size() <= {spec_rules.NAME_MAX}",
        message=f"metadata.name must be at most {spec_rules.NAME_MAX} characters: it names the Service "
        "and is a label value of every child",
        check=lambda md: len(md.metadata.name) <= spec_rules.NAME_MAX,
    ),
    Rule(
        cel=f"self.metadata.name.matches({spec_rules.cel_string(spec_rules.DNS1035_LABEL)})",
        message="metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a "
        "letter, no dots): it names the Service",
        check=lambda md: spec_rules.matches(spec_rules.DNS1035_LABEL, md.metadata.name),
    ),
)
