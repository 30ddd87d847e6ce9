# ruff: noqa: RUF001, RUF003  (figures use the en dash of "min–max" and the sign ×)
"""benchmarks/results.py: the JSON every figure in the docs comes from, and the figure format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.results import ResultsError, fmt, load, machine, provenance, summarize, write


def test_summarize_gives_median_and_spread() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0])
    assert s["median"] == 2.5
    assert (s["min"], s["max"], s["n"]) == (1.0, 10.0, 4)
    assert s["mean"] == 4.0
    assert s["stdev"] == pytest.approx(4.0825, abs=1e-3)
    assert "stdev" not in summarize([5.0])


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_summarize_refuses_what_is_not_a_figure(bad: list[float]) -> None:
    with pytest.raises(ResultsError):
        summarize(bad)


@pytest.mark.parametrize(
    ("values", "unit", "digits", "expected"),
    [
        ([12.34, 11.81, 13.02], "ms", None, "12.3 ms (11.8–13.0, n=3)"),
        ([0.2034, 0.25, 0.19], "ms", None, "0.203 ms (0.190–0.250, n=3)"),
        ([20712.4, 11500.0, 10020.0], "req/s", None, "11500 req/s (10020–20712, n=3)"),
        ([5.5, 4.2], "×", 1, "4.8× (4.2–5.5, n=2)"),
        ([1.0, 2.0, 3.0], "", 2, "2.00 (1.00–3.00, n=3)"),
        ([27.0], "ms", None, "27.0 ms (n=1)"),
        ([0.0, 0.0], "%", None, "0% (0–0, n=2)"),
    ],
)
def test_fmt_shows_median_range_and_runs(
    values: list[float], unit: str, digits: int | None, expected: str
) -> None:
    assert fmt(values, unit, digits) == expected


def test_write_records_provenance_tables_values_and_data(tmp_path: Path) -> None:
    path = write(
        "demo",
        command="python benchmarks/demo.py --runs 3",
        runs=3,
        tables={"main": {"columns": ["a", "b"], "rows": [["1", "2"], ["3", "4"]]}},
        values={"speed": "12.3 ms (11.8–13.0, n=3)"},
        data={"raw": [1, 2, 3]},
        packages=["pytest", "surely-not-a-real-distribution"],
        directory=tmp_path,
    )
    assert path == tmp_path / "demo.json"
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "demo"
    assert doc["command"] == "python benchmarks/demo.py --runs 3"
    assert doc["runs"] == 3
    assert doc["date"].endswith("Z") and doc["date"][:2] == "20"
    assert doc["versions"]["pytest"] == pytest.__version__
    assert doc["versions"]["surely-not-a-real-distribution"] == "not installed"
    assert doc["tables"]["main"]["rows"] == [["1", "2"], ["3", "4"]]
    assert doc["values"] == {"speed": "12.3 ms (11.8–13.0, n=3)"}
    assert doc["data"] == {"raw": [1, 2, 3]}
    m = doc["machine"]
    assert m["cores"] >= 1 and m["cpu"] and m["os"] and m["python"].count(".") == 2
    assert isinstance(m["gpu"], list)
    assert load("demo", tmp_path) == doc
    assert not list(tmp_path.glob("*.tmp"))


def test_machine_names_cpu_memory_and_python() -> None:
    m = machine()
    assert set(m) == {"cpu", "cores", "memory_gib", "gpu", "os", "python"}
    assert m["memory_gib"] is None or m["memory_gib"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a.b"}, "result name"),
        ({"runs": 0}, "runs"),
        ({"command": " "}, "command"),
        ({"tables": {"t": {"columns": ["a", "b"], "rows": [["1"]]}}}, "1 cells for 2 columns"),
        ({"tables": {"t": {"columns": ["a"], "rows": [[1.5]]}}}, "formatted strings"),
        ({"tables": {"t": {"columns": ["a"]}}}, "exactly 'columns' and 'rows'"),
        ({"values": {"v": 1.5}}, "formatted string"),
        ({"values": {"bad key": "1"}}, "value key"),
    ],
)
def test_write_refuses_malformed_results_and_writes_nothing(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"name": "demo", "command": "python x.py", "runs": 1, "directory": tmp_path}
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(ResultsError, match=message):
        write(name, **args)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_load_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"no result 'gone'.*gone\.json does not exist"):
        load("gone", tmp_path)


def test_provenance_keys() -> None:
    doc = {
        "date": "2026-11-30T01:02:03Z",
        "runs": 5,
        "command": "python benchmarks/x.py",
        "machine": {
            "cpu": "Some CPU",
            "cores": 2,
            "memory_gib": 7.8,
            "gpu": ["NVIDIA H200, 143771 MiB, 580"],
        },
    }
    assert provenance(doc, "@date") == "2026-11-30"
    assert provenance(doc, "@runs") == "5"
    assert provenance(doc, "@command") == "python benchmarks/x.py"
    assert provenance(doc, "@machine") == "Some CPU, 2 cores, 7.8 GiB, NVIDIA H200"
    assert provenance(doc, "@source") == "measured by `python benchmarks/x.py`"
    assert provenance({**doc, "recorded": {"source": "a printout"}}, "@source") == "a printout"
    assert provenance({"machine": {"cpu": "not recorded", "gpu": ["H200, 1 MiB"]}}, "@machine") == "H200"
    with pytest.raises(ResultsError, match="unknown provenance key"):
        provenance(doc, "@colour")


def test_recorded_figures_keep_the_date_and_machine_of_their_run_and_say_so(tmp_path: Path) -> None:
    run = {
        "date": "2026-11-01T10:00:00Z",
        "machine": {"cpu": "unknown", "cores": 16, "memory_gib": None, "gpu": ["NVIDIA H200"]},
        "source": "printout of one run, pasted in docs/x.md at commit abc",
    }
    doc = json.loads(
        write("old", command="python x.py", runs=1, recorded=run, directory=tmp_path).read_text()
    )
    assert doc["date"] == "2026-11-01T10:00:00Z"
    assert doc["machine"]["gpu"] == ["NVIDIA H200"]
    assert doc["recorded"]["source"] == run["source"]
    assert doc["recorded"]["written"].endswith("Z")
    with pytest.raises(ResultsError, match="missing"):
        write("old", command="python x.py", runs=1, recorded={"date": "x"}, directory=tmp_path)
