"""Remote artifact URIs end to end on fsspec's real in-memory filesystem (memory://).

train -> memory:// -> convert (downloading the model, uploading the engine folder) -> serve (downloading
the engine folder), plus the refusals: an existing remote artifact, a folder without its completion
marker, a corrupt download, and s3:// without the `s3` extra.
"""

from __future__ import annotations

import errno
import http.client
import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import fsspec
import numpy as np
import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem
from trtforge_runtime import errors, remote
from trtforge_runtime.cli import build_parser, main
from trtforge_runtime.errors import RemoteStorageError, RemoteStorageUnavailableError

HERE = Path(__file__).parent


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered before it runs, as dataclasses (serve_support's) look it up
    spec.loader.exec_module(module)
    return module


# the other test folders' helpers (conftest modules are not importable by name under importlib mode)
train_helpers = _load(HERE / "train" / "conftest.py", "remote_train_helpers")
convert_helpers = _load(HERE / "convert" / "conftest.py", "remote_convert_helpers")
digits_mlp = convert_helpers.digits_mlp


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv(remote.CACHE_ENV, str(path))
    monkeypatch.delenv("TRTFORGE_ENGINE_CACHE", raising=False)
    monkeypatch.delenv("TRTFORGE_TERMINATION_MESSAGE_PATH", raising=False)
    return path


@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh memory:// prefix, removed afterwards (the memory filesystem is process-global)."""
    root = f"memory://trtforge-tests-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root.removeprefix("memory:/")):
        fs.rm(root.removeprefix("memory:/"), recursive=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(digits_mlp.write_model_dir(tmp_path_factory.mktemp("model") / "digits"))


def listing(uri: str) -> list[str]:
    return remote.RemoteFolder.open(uri).files()


def upload(local: Path, uri: str, skip: tuple[str, ...] = ()) -> None:
    folder = remote.RemoteFolder.open(uri)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        rel = path.relative_to(local).as_posix()
        if rel not in skip:
            folder.put(path, rel)


def write_spec(tmp_path: Path, engine: dict[str, Any] | None = None, name: str = "spec") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(convert_helpers.manifest(engine)))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def infer(port: int, rows: np.ndarray) -> dict[str, Any]:
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("POST", "/v2/models/digits/infer", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    assert resp.status == 200, data
    return dict(data)


# ---- argument parsing -----------------------------------------------------------------------------


def test_flags_keep_local_paths_and_accept_uris() -> None:
    parser = build_parser()
    args = parser.parse_args(["convert", "-f", "m.yaml", "--model", "s3://b/models/1", "-o", "out/engine"])
    assert args.model == "s3://b/models/1"
    assert args.output == Path("out/engine")
    args = parser.parse_args(["serve", "--engine", "memory://b/e"])
    assert args.engine == "memory://b/e"
    args = parser.parse_args(["train", "-f", "m.yaml", "-o", "file:///data/model"])
    assert args.output == Path("/data/model")
    assert remote.is_remote("s3://b/k") and not remote.is_remote(Path("s3:/b/k"))


# ---- refusals (fast: they fail before any training or conversion) --------------------------------


def test_s3_without_s3fs_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if the `s3` extra were not installed
    registry = importlib.import_module("fsspec.registry")  # the module (fsspec.registry is its mapping)
    monkeypatch.delitem(registry._registry, "s3", raising=False)  # no s3 class imported earlier
    code, _, err = cli(capsys, "serve", "--engine", "s3://bucket/engines/1")
    assert code == 6
    assert "s3://bucket/engines/1" in err and "trtforge[s3]" in err
    spec = train_helpers.manifest()
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = cli(capsys, "train", "-f", str(tmp_path / "m.yaml"), "-o", "s3://bucket/models/1")
    assert code == 6 and "trtforge[s3]" in err


def test_missing_and_incomplete_remote_inputs_are_refused(
    bucket: str, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "serve", "--engine", f"{bucket}/engines/none")
    assert code == 5 and f"engine folder {bucket}/engines/none not found" in err

    upload(model_dir, f"{bucket}/models/partial", skip=("manifest.json",))  # an interrupted upload
    with pytest.raises(RemoteStorageError, match=r"holds no manifest\.json: it is incomplete"):
        remote.fetch_model(f"{bucket}/models/partial")
    spec = write_spec(model_dir.parent)
    code, _, err = cli(
        capsys, "convert", "-f", str(spec), "--model", f"{bucket}/models/partial", "-o", f"{bucket}/e"
    )
    assert code == 5 and f"{bucket}/models/partial holds no manifest.json" in err
    assert listing(f"{bucket}/e") == []


def test_a_corrupt_download_is_refused(bucket: str, model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    convert_helpers.write_model_folder(bad, (model_dir / "model.onnx").read_bytes(), model_dir)
    doc = json.loads((bad / "manifest.json").read_text())
    doc["digest"] = "sha256:" + "0" * 64
    (bad / "manifest.json").write_text(json.dumps(doc))
    upload(bad, f"{bucket}/models/bad")
    with pytest.raises(RemoteStorageError, match="does not match the digest"):
        remote.fetch_model(f"{bucket}/models/bad")
    cached = list((tmp_path / "cache" / "remote").iterdir())
    assert cached == []  # nothing half-verified left in the cache


def test_train_refuses_an_existing_remote_model(
    bucket: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"{bucket}/models/1"
    upload(model_dir, uri)
    before = listing(uri)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(train_helpers.manifest()))
    code, _, err = cli(capsys, "train", "-f", str(tmp_path / "m.yaml"), "-o", uri, "--progress", "none")
    assert code == 5
    assert f"output {uri} already holds an existing artifact (manifest.json)" in err and "--overwrite" in err
    assert listing(uri) == before


def test_convert_refuses_a_remote_output_without_its_marker(
    bucket: str, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = f"{bucket}/engines/1"
    upload(model_dir, out, skip=("manifest.json",))
    spec = write_spec(model_dir.parent)
    code, _, err = cli(capsys, "convert", "-f", str(spec), "--model", str(model_dir), "-o", out)
    assert code == 5 and f"output {out} holds files but no engine.json" in err


# ---- transient or permanent: decided by the store's error ----------------------------------------


class NoCredentialsError(Exception):
    """Named like botocore's (not installed here): no credentials found at all."""


class EndpointConnectionError(Exception):
    """Named like botocore's: the endpoint did not answer (no errno, not an OSError)."""


def _refused_connection() -> BaseException:
    """The real error aiohttp (under s3fs and fsspec's http) raises when nothing listens on the port."""
    fs = fsspec.filesystem("http")
    try:
        fs.cat_file("http://127.0.0.1:9/bucket/key")  # port 9 (discard): nothing listens here
    except Exception as exc:
        return exc
    raise AssertionError("a connection to 127.0.0.1:9 succeeded")


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        # what s3fs raises for S3's error codes (s3fs/errors.py)
        (FileNotFoundError("NoSuchKey"), False),
        (FileNotFoundError("NoSuchBucket"), False),
        (PermissionError("AccessDenied"), False),
        (PermissionError("InvalidAccessKeyId"), False),
        (OSError(errno.EINVAL, "InvalidBucketName"), False),
        (OSError(errno.EPERM, "MethodNotAllowed"), False),
        (NoCredentialsError("Unable to locate credentials"), False),
        (ValueError("bad URI"), False),
        (TimeoutError("RequestTimeout"), True),
        (OSError(errno.EBUSY, "SlowDown"), True),
        (OSError(errno.EBUSY, "ServiceUnavailable"), True),
        (OSError(getattr(errno, "EREMOTEIO", errno.EIO), "InternalError"), True),
        (OSError(errno.EIO, "an S3 code s3fs does not know"), True),
        # the network
        (ConnectionResetError(errno.ECONNRESET, "reset by peer"), True),
        (OSError(-3, "Temporary failure in name resolution"), True),
        (EndpointConnectionError("Could not connect to the endpoint URL"), True),
    ],
    ids=repr,
)
def test_transient_store_errors_are_retried_permanent_ones_are_not(exc: BaseException, retry: bool) -> None:
    assert remote.transient(exc) is retry
    error = RemoteStorageUnavailableError if retry else RemoteStorageError
    with pytest.raises(error) as caught, remote._storage_errors("s3://b/k", "cannot read"):
        raise exc
    assert type(caught.value) is error and "s3://b/k" in str(caught.value)


def test_a_refused_connection_is_transient() -> None:
    exc = _refused_connection()
    assert isinstance(exc, OSError) and remote.transient(exc)


class FlakyFileSystem(MemoryFileSystem):
    """fsspec's in-memory store (shared with memory://) whose downloads fail with `failure`, as S3 would."""

    protocol = "flaky"
    failure: BaseException | None = None

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(MemoryFileSystem._strip_protocol(path.replace("flaky://", "memory://", 1)))

    def get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        if self.failure is not None:
            raise self.failure
        super().get_file(rpath, lpath, **kwargs)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (OSError(errno.EBUSY, "SlowDown"), 11),
        (ConnectionResetError("reset"), 11),
        (PermissionError("AccessDenied"), 5),
    ],
    ids=["slow-down", "reset", "access-denied"],
)
def test_serve_exits_transient_on_a_store_blip_and_permanent_when_denied(
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: BaseException,
    code: int,
) -> None:
    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    monkeypatch.setattr(FlakyFileSystem, "failure", failure)
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "engine.json").write_text("{}")
    (engine / "model.onnx").write_bytes(b"onnx")
    upload(engine, f"{bucket}/engines/1")
    uri = f"{bucket}/engines/1".replace("memory://", "flaky://")
    rc, _, err = cli(capsys, "serve", "--engine", uri)
    assert rc == code and f"cannot download from {uri}" in err
    permanent = errors.permanent_exit_codes()
    assert (rc in permanent) is isinstance(failure, PermissionError)


# ---- real conversion and serving through memory:// ------------------------------------------------


@pytest.mark.slow
def test_convert_memory_to_memory_reuses_refuses_and_serves(
    bucket: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_uri, engine_uri = f"{bucket}/models/1", f"{bucket}/engines/1"
    upload(model_dir, model_uri)
    spec = write_spec(tmp_path)
    code, out, err = cli(capsys, "convert", "-f", str(spec), "--model", model_uri, "-o", engine_uri)
    assert code == 0, err
    assert f"published to {engine_uri}" in out
    files = listing(engine_uri)
    assert "engine.json" in files and "engines/tensorrt-rtx-sm89.engine" in files
    assert "onnxruntime/model.onnx" in files
    folder = remote.RemoteFolder.open(engine_uri)
    doc = folder.read_json("engine.json")
    assert doc["model"]["digest"] == json.loads((model_dir / "manifest.json").read_text())["digest"]
    first = folder.read_bytes("engine.json")

    # same model and engine spec: up to date, nothing uploaded
    code, out, err = cli(capsys, "convert", "-f", str(spec), "--model", model_uri, "-o", engine_uri)
    assert code == 0, err
    assert "is up to date" in out
    assert folder.read_bytes("engine.json") == first

    # another engine spec: refused, naming the URI, remote untouched
    other = write_spec(tmp_path, {"precision": "fp32"}, name="fp32")
    code, _, err = cli(capsys, "convert", "-f", str(other), "--model", model_uri, "-o", engine_uri)
    assert code == 5 and f"output folder {engine_uri} already holds a different engine" in err
    assert folder.read_bytes("engine.json") == first and listing(engine_uri) == files

    # serve's loader: download into the cache, then a real server answers from it
    _serve_and_infer(engine_uri, np.load(model_dir / "samples.npz")["x_test"][:3])


def _serve_and_infer(engine_uri: str, rows: np.ndarray) -> None:
    from trtforge_runtime.serve.command import localize_engine

    args = build_parser().parse_args(["serve", "--engine", engine_uri, "--backend", "onnxruntime"])
    local = localize_engine(args)
    assert isinstance(local.engine, Path) and (local.engine / "engine.json").is_file()
    assert localize_engine(args).engine == local.engine  # cached: same folder, no second download
    support = _load(HERE / "serve" / "serve_support.py", "remote_serve_support")
    server = support.serve(local.engine, backend="onnxruntime")
    try:
        assert server.server is not None
        result = infer(server.server.port, rows.astype(np.float32))
    finally:
        server.stop()
    assert result["outputs"][0]["shape"] == [len(rows), 10]


@pytest.mark.slow
def test_train_to_memory_then_convert_and_serve(
    bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_uri, engine_uri = f"{bucket}/models/1", f"{bucket}/engines/1"
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(train_helpers.manifest()))
    code, out, err = cli(
        capsys, "train", "-f", str(tmp_path / "m.yaml"), "-o", model_uri, "--progress", "none"
    )
    assert code == 0, err
    assert model_uri in out
    files = listing(model_uri)
    assert {"manifest.json", "model.onnx", "samples.npz", "metrics.json"} <= set(files)
    assert any(f.startswith("saved_model/") for f in files)
    local = remote.fetch_model(model_uri)  # digest verified against manifest.json
    manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["name"] == "tiny"

    spec = tmp_path / "convert.yaml"
    spec.write_text(yaml.safe_dump(convert_helpers.manifest({"precision": "fp32"}, name="digits")))
    code, _, err = cli(capsys, "convert", "-f", str(spec), "--model", model_uri, "-o", engine_uri)
    assert code == 0, err
    _serve_and_infer(engine_uri, np.load(local / "samples.npz")["x_test"][:2])


@pytest.mark.slow
def test_train_below_min_accuracy_publishes_only_metrics_remotely(
    bucket: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(train_helpers.manifest({"minAccuracy": 1.0})))
    fresh, kept = f"{bucket}/models/fresh", f"{bucket}/models/kept"
    code, _, err = cli(capsys, "train", "-f", str(tmp_path / "m.yaml"), "-o", fresh, "--progress", "none")
    assert code == 4
    assert f"{fresh}/metrics.json" in err and "no model was published" in err
    assert listing(fresh) == ["metrics.json"]
    assert remote.RemoteFolder.open(fresh).read_json("metrics.json")["passed"] is False

    upload(model_dir, kept)
    before = {f: remote.RemoteFolder.open(kept).read_bytes(f) for f in listing(kept)}
    argv = ["train", "-f", str(tmp_path / "m.yaml"), "-o", kept, "--progress", "none", "--overwrite"]
    code, _, err = cli(capsys, *argv)
    assert code == 4 and f"{kept}/metrics.rejected.json" in err and "existing model" in err
    folder = remote.RemoteFolder.open(kept)
    assert listing(kept) == sorted([*before, "metrics.rejected.json"])
    assert all(folder.read_bytes(f) == data for f, data in before.items())  # the model is untouched
