"""Showing training progress: a tqdm bar on a terminal, one plain line per epoch in a Job's log.

A bar redraws with carriage returns, which turn a container log into noise; a Job (no TTY) gets one
self-contained line per epoch instead (`epoch 3/30 loss=0.4120 accuracy=0.8801 val_loss=...`).
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any, Literal, TextIO

import keras

ProgressMode = Literal["auto", "bar", "lines", "none"]


def resolve_mode(mode: str, stream: TextIO) -> Literal["bar", "lines", "none"]:
    """`auto` becomes `bar` on a terminal and `lines` otherwise."""
    if mode == "auto":
        isatty = getattr(stream, "isatty", None)
        return "bar" if callable(isatty) and isatty() else "lines"
    if mode in ("bar", "lines", "none"):
        return mode  # type: ignore[return-value]
    raise ValueError(f"unknown progress mode {mode!r}")


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal behind `stream`; 0 when unknown (a pseudo-terminal may report 0 x 0,
    where tqdm would then draw an empty bar)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 0


def format_logs(logs: dict[str, Any] | None) -> str:
    """`loss=0.1234 accuracy=0.9600 ...` in a stable order (training metrics, then validation)."""
    items = sorted((logs or {}).items(), key=lambda kv: (kv[0].startswith("val_"), kv[0]))
    return " ".join(f"{k}={float(v):.4f}" for k, v in items if isinstance(v, int | float))


class EpochLines(keras.callbacks.Callback):
    """One line per epoch, flushed at once so `kubectl logs -f` shows it."""

    def __init__(self, epochs: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        secs = time.perf_counter() - self._start
        self.stream.write(f"epoch {epoch + 1}/{self.epochs} {format_logs(logs)} ({secs:.1f}s)\n")
        self.stream.flush()


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over all batches of all epochs, its postfix showing the last epoch's metrics."""

    def __init__(self, epochs: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self._bar: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        from tqdm.auto import tqdm

        steps = (self.params or {}).get("steps") or 0
        width = terminal_width(self.stream)
        self._bar = tqdm(
            total=steps * self.epochs if steps else None,
            unit="batch",
            file=self.stream,
            dynamic_ncols=width > 0,
            ncols=None if width > 0 else 100,
            nrows=None if width > 0 else 24,  # tqdm hides a bar beyond a screen height of 0
            desc=f"epoch 1/{self.epochs}",
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.set_description(f"epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def callbacks(mode: str, epochs: int, stream: TextIO | None = None) -> list[keras.callbacks.Callback]:
    stream = stream or sys.stderr
    resolved = resolve_mode(mode, stream)
    if resolved == "bar":
        return [ProgressBar(epochs, stream)]
    if resolved == "lines":
        return [EpochLines(epochs, stream)]
    return []
