from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from trtforge_operator.errors import UnworkableSpecError
from trtforge_operator.feasibility import check
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.load import parse_spec

DEFAULT_STORE = "pvc://trtforge-artifacts/"


def test_the_example_is_workable(make_spec: Callable[..., dict[str, Any]]) -> None:
    check(parse_spec(make_spec()), DEFAULT_STORE)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"engine.computeCapabilities": ["8.9", "9.0"]}, "spec.engine.computeCapabilities[1]"),
        ({"engine.computeCapabilities": ["7.5"]}, "spec.engine.computeCapabilities[0]"),
        ({"model.train.dataset.uri": "/data/train.npz"}, "spec.model.train.dataset.uri"),
        ({"model.train.dataset.uri": "file:///data/x.npz"}, "spec.model.train.dataset.uri"),
    ],
)
def test_unworkable_specs_name_the_field(
    make_spec: Callable[..., dict[str, Any]], changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(UnworkableSpecError) as err:
        check(parse_spec(make_spec(**changes)), DEFAULT_STORE)
    assert err.value.field == field
    assert str(err.value).startswith(field)
    assert isinstance(err.value, ManifestError)


def test_tensorrt_needs_a_gpu_and_accepts_hopper(make_spec: Callable[..., dict[str, Any]]) -> None:
    spec = make_spec(**{"engine.backend": "tensorrt", "engine.computeCapabilities": ["9.0"]})
    with pytest.raises(UnworkableSpecError, match=r"spec\.engine\.resources\.gpus"):
        check(parse_spec(spec), DEFAULT_STORE)
    spec["engine"]["resources"]["gpus"] = 1
    check(parse_spec(spec), DEFAULT_STORE)


def test_local_storage_and_sources(make_spec: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(UnworkableSpecError, match=r"^spec\.storage\.uri"):
        check(parse_spec(make_spec()), "file:///tmp/x")
    spec = make_spec()
    spec["model"] = {"source": {"uri": "./model.onnx", "format": "onnx"}}
    with pytest.raises(UnworkableSpecError, match=r"^spec\.model\.source\.uri"):
        check(parse_spec(spec), DEFAULT_STORE)
    spec["model"]["source"]["uri"] = "s3://bucket/model.onnx"
    check(parse_spec(spec), DEFAULT_STORE)


@pytest.mark.parametrize("mode", ["hpa", "keda"])
def test_autoscaling_mode_the_operator_does_not_serve(
    make_spec: Callable[..., dict[str, Any]], mode: str
) -> None:
    spec = parse_spec(make_spec(**{"serving.autoscaling.mode": mode}))
    check(spec, DEFAULT_STORE)  # without settings: not checked
    check(spec, DEFAULT_STORE, OperatorSettings())  # unset TRTFORGE_AUTOSCALER_MODES: every mode
    with pytest.raises(UnworkableSpecError) as err:
        check(spec, DEFAULT_STORE, OperatorSettings(autoscaler_modes=()))
    assert err.value.field == "spec.serving.autoscaling.mode"
    assert "TRTFORGE_AUTOSCALER_MODES" in str(err.value)
    # autoscaling off in the spec, or in the whole operator: nothing to refuse
    off = parse_spec(make_spec(**{"serving.autoscaling.mode": mode, "serving.autoscaling.enabled": False}))
    check(off, DEFAULT_STORE, OperatorSettings(autoscaler_modes=()))
    check(spec, DEFAULT_STORE, OperatorSettings(autoscaler_modes=(), autoscaler_enabled=False))


def test_custom_code_without_a_dataset(make_spec: Callable[..., dict[str, Any]]) -> None:
    """Custom training code may bring its own data (no spec.model.train.dataset): workable, and only its
    code's claim is an input claim."""
    from trtforge_operator.storage import input_claims

    spec = make_spec()
    del spec["model"]["train"]["dataset"], spec["model"]["train"]["architecture"]
    spec["model"]["train"]["custom"] = {"entryPoint": "train:fit", "code": "pvc://team-code/src"}
    parsed = parse_spec(spec)
    check(parsed, DEFAULT_STORE)
    assert input_claims(parsed) == ["team-code"]
