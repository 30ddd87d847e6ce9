"""The one failure table: every error class says its exit code, status reason and retry policy once, and
the CLI exits with exactly that code."""

from __future__ import annotations

import argparse

import pytest
from trtforge_runtime import cli, errors
from trtforge_runtime.errors import TrainingError, TrtforgeError, failure_table


def _classes() -> list[type[TrtforgeError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, TrtforgeError) and obj.__module__ == errors.__name__
    ]


def test_every_runtime_error_is_in_the_table_under_its_exit_code() -> None:
    table = failure_table()
    for cls in _classes():
        entry = table[cls.exit_code]
        assert cls.__name__ in entry.errors
        assert (entry.reason, entry.permanent) == (cls.reason, cls.permanent), cls


def test_training_error_is_permanent_and_unexpected_errors_are_transient() -> None:
    table = failure_table()
    assert table[TrainingError.exit_code].permanent and table[9].reason == "TrainingFailed"
    assert table[1].permanent is False  # an unexpected exception (Python exits 1) may be transient
    assert errors.permanent_exit_codes() == sorted(c for c, f in table.items() if f.permanent)
    assert 1 not in errors.exit_code_reasons()


def test_classes_sharing_an_exit_code_must_agree() -> None:
    class Drifted(errors.ConversionError):  # same exit code as ConversionError, other reason
        reason = "SomethingElse"

    Drifted.__module__ = errors.__name__
    try:
        with pytest.raises(AssertionError, match="Drifted exits 6"):
            failure_table()
    finally:
        Drifted.__module__ = __name__


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_cli_exits_with_its_exit_code(monkeypatch: pytest.MonkeyPatch, cls: type[TrtforgeError]) -> None:
    def command(args: argparse.Namespace) -> int:
        raise cls("boom")

    monkeypatch.setattr(cli, "_resolve", lambda target: command)
    assert cli.main(["train", "-f", "x.yaml", "-o", "out"]) == cls.exit_code
