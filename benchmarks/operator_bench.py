"""Benchmark of the operator against the Kubernetes emulator (`trtforge operator` as a real subprocess).

    python benchmarks/operator_bench.py [--runs 3] [--rounds 10] [--crs 100] [--json FILE]

1. create -> Job: a ModelDeployment is created; measured: time until its training Job exists (target <= 1 s).
2. Job -> next stage: the training Job is marked succeeded (termination message and all, as the job
   controller and kubelet would); measured: time until the conversion Job exists (target <= 1 s).
3. burst: --crs ModelDeployments created at once; measured: time until every one has its training Job
   (target <= 60 s), then the operator's RSS with all of them (target <= 150 MB).
4. per event (on the one Ready ModelDeployment, each after the operator went quiet): the API requests of
   the reconcile a child event causes (its predictor Deployment annotated from outside: nothing to
   change), of a spec edit (one reconcile and its status write), and of its Service deleted from
   outside (recreated from the watch event; measured too: the time until the Service is back).
5. at rest: with all of them settled (one of them Ready, serving, built-in autoscaling), the API requests
   the operator makes per second over --rest-seconds (watches not counted; target <= 3/s: the Lease
   renewals; no reconcile, no HPA / ScaledObject read, the autoscaler's pods come from the pod watch).

The emulator runs in this process (its own thread); the test side polls the store every 2 ms. Each of
--runs starts a fresh emulator and operator; the figures are medians over the runs with their spread.
Writes benchmarks/results/operator.json (benchmarks/results.py), which docs/operator.md renders.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "operator"))
sys.path.insert(0, str(REPO))

from kube_emulator.fixtures import start_kube  # noqa: E402
from kube_emulator.helpers import Kube  # noqa: E402
from operator_process import NAMESPACE, OperatorProcess  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402

MODEL = "trtforge.dev/v1alpha1"
STAGE = "trtforge.dev/stage"
OWNER = "trtforge.dev/modeldeployment"
TRAIN_OK = {"ok": True, "stage": "train", "accuracy": 0.97, "digest": "sha256:0"}
CONVERT_OK = {"ok": True, "stage": "convert", "precision": "fp16", "top1Drop": 0.0, "sizeBytes": 1000}
CHILD_PATHS = ("/horizontalpodautoscalers/", "/scaledobjects/")
REQUESTS: list[tuple[float, str, str]] = []  # (monotonic time, method, path) of every API request


def record_requests() -> None:
    """Log every request the in-process emulator answers (its ApiServer class, patched once)."""
    from kube_emulator.server import ApiServer

    dispatch = ApiServer._dispatch

    async def recording(self: Any, request: Any) -> Any:
        if request.query.get("watch") not in ("true", "1"):
            REQUESTS.append((time.monotonic(), request.method, request.path))
        return await dispatch(self, request)

    ApiServer._dispatch = recording  # type: ignore[method-assign]


def drive_to_ready(kube: Kube, name: str) -> None:
    """Its conversion Job succeeds and its serving Deployment becomes ready: phase Ready."""
    wait(lambda: stage_jobs(kube, "convert", name), 10)
    (job,) = stage_jobs(kube, "convert", name)
    kube.complete_job(NAMESPACE, job["metadata"]["name"], termination_message=CONVERT_OK)
    predictor = f"{name}-predictor"
    wait(lambda: kube.get("apps/v1", "Deployment", predictor, NAMESPACE), 10)
    kube.make_deployment_ready(NAMESPACE, predictor)

    def ready() -> bool:
        obj = kube.get(MODEL, "ModelDeployment", name, NAMESPACE) or {}
        return (obj.get("status") or {}).get("phase") == "Ready"

    wait(ready, 15, interval=0.05)


def at_rest(seconds: float) -> dict[str, Any]:
    """Once the burst's reconciles are done: requests per second over the next `seconds`, and the
    HPA / ScaledObject reads among them."""
    t0 = time.monotonic()
    settle(3.0, 120.0)
    settled = round(time.monotonic() - t0, 1)
    start = time.monotonic()
    time.sleep(seconds)
    window = [(m, p) for at, m, p in list(REQUESTS) if at >= start]
    return {
        "seconds": seconds,
        "settle_s": settled,
        "requests_per_s": round(len(window) / seconds, 2),
        "child_reads": sum(1 for _, p in window if any(c in p for c in CHILD_PATHS)),
        "modeldeployment_reads": sum(1 for m, p in window if m == "GET" and "/modeldeployments/" in p),
        "most_requested": [f"{n} {m} {p}" for (m, p), n in Counter(window).most_common(5)],
    }


def operator_requests(start: float) -> list[tuple[str, str]]:
    """The operator's requests since `start` but its Lease's (the emulator runs in-process: the
    benchmark's own reads and writes never go through HTTP, so everything recorded is the operator's)."""
    return [(m, p) for at, m, p in list(REQUESTS) if at >= start and "/leases/" not in p]


def settle(seconds: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the operator made no request but Lease renewals for `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        last = [at for at, _, p in list(REQUESTS) if "/leases/" not in p]
        if not last or time.monotonic() - last[-1] >= seconds:
            return
        time.sleep(0.1)


def per_event(kube: Kube, name: str, repeats: int) -> dict[str, Any]:
    """API requests the operator makes for one event of a Ready ModelDeployment (see the docstring)."""
    predictor, service = f"{name}-predictor", name
    counts: dict[str, list[int]] = {"child_event": [], "spec_edit": [], "child_deleted": []}
    recreated: list[float] = []
    reads: Counter[str] = Counter()
    for i in range(repeats):
        for what in counts:
            settle()
            start = time.monotonic()
            if what == "child_event":
                poke = {"metadata": {"annotations": {"bench.trtforge.dev/poke": str(i)}}}
                kube.patch("apps/v1", "Deployment", predictor, poke, NAMESPACE)
            elif what == "spec_edit":
                edit = {"spec": {"serving": {"autoscaling": {"scaleDownDelaySeconds": 40 + i}}}}
                kube.patch(MODEL, "ModelDeployment", name, edit, NAMESPACE)
            else:
                kube.delete("v1", "Service", service, NAMESPACE)
                recreated.append(wait(lambda: kube.get("v1", "Service", service, NAMESPACE), 10))
            time.sleep(1.0)  # the reaction (well under a second), then quiet again
            settle()
            seen = operator_requests(start)
            counts[what].append(len(seen))
            reads.update(f"{m} {p}" for m, p in seen if m == "GET" and what == "child_event")
    out: dict[str, Any] = {k: statistics.median(v) for k, v in counts.items()}
    out["reads_per_child_event"] = {k: n / repeats for k, n in reads.most_common()}
    out["service_recreated"] = summary(recreated)
    return out


def manifest(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name, "namespace": NAMESPACE}
    return doc


def stage_jobs(kube: Kube, stage: str, name: str | None = None) -> list[dict[str, Any]]:
    sel = f"{STAGE}={stage}" + (f",{OWNER}={name}" if name else "")
    return kube.list("batch/v1", "Job", NAMESPACE, sel)


def wait(predicate: Any, timeout: float, interval: float = 0.002) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("timed out")
        time.sleep(interval)
    return time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(values[min(len(values) - 1, int(0.95 * len(values)))] * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One fresh emulator and operator: the latency rounds, then the burst."""
    tmp = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    thread, kube = start_kube(tmp)
    kube.create_namespace(NAMESPACE)
    env = dict(item.split("=", 1) for item in args.env)
    op = OperatorProcess(kube.kubeconfig, tmp / "operator.log", env, verbose=False).start()
    results: dict[str, Any] = {}
    try:
        created, advanced = [], []
        for i in range(args.rounds):
            name = f"lat-{i}"
            t0 = time.perf_counter()
            kube.create(manifest(name))
            wait(lambda n=name: stage_jobs(kube, "train", n), 10)
            created.append(time.perf_counter() - t0)
            (job,) = stage_jobs(kube, "train", name)
            t0 = time.perf_counter()
            kube.complete_job(NAMESPACE, job["metadata"]["name"], termination_message=TRAIN_OK)
            wait(lambda n=name: stage_jobs(kube, "convert", n), 10)
            advanced.append(time.perf_counter() - t0)
        drive_to_ready(kube, "lat-0")
        results["per_event"] = per_event(kube, "lat-0", args.event_rounds)
        results["create_to_train_job"] = summary(created)
        results["train_succeeded_to_convert_job"] = summary(advanced)

        before = len(stage_jobs(kube, "train"))
        t0 = time.perf_counter()
        for i in range(args.crs):
            kube.create(manifest(f"burst-{i}"))
        wait(lambda: len(stage_jobs(kube, "train")) >= before + args.crs, 120, interval=0.05)
        results["burst"] = {"crs": args.crs, "all_train_jobs_s": round(time.perf_counter() - t0, 2)}
        time.sleep(3.0)  # settle: every status written
        phases = [
            (o.get("status") or {}).get("phase") for o in kube.list(MODEL, "ModelDeployment", NAMESPACE)
        ]
        results["burst"]["training_phase"] = sum(p == "Training" for p in phases)
        results["operator_rss_mb"] = round(op.rss_mb(), 1)
        results["modeldeployments"] = len(phases)
        results["at_rest"] = at_rest(args.rest_seconds)
    finally:
        op.stop()
        thread.stop()
    return results


def meets_targets(results: dict[str, Any]) -> bool:
    return bool(
        results["create_to_train_job"]["p95_ms"] <= 1000
        and results["train_succeeded_to_convert_job"]["p95_ms"] <= 1000
        and results["burst"]["all_train_jobs_s"] <= 60
        and results["operator_rss_mb"] <= 150
        and results["at_rest"]["requests_per_s"] <= 3
        and results["at_rest"]["child_reads"] == 0
        and results["per_event"]["child_event"] == 0
        and results["per_event"]["spec_edit"] <= 1
        and results["per_event"]["child_deleted"] <= 1
        and results["per_event"]["service_recreated"]["median_ms"] <= 1000
    )


def record(runs: list[dict[str, Any]], args: argparse.Namespace, command: str) -> Path:
    """benchmarks/results/operator.json: medians over the runs, with their spread."""

    def over_runs(path: tuple[str, ...]) -> list[float]:
        out = []
        for r in runs:
            v: Any = r
            for k in path:
                v = v[k]
            out.append(float(v))
        return out

    values = {
        "create_median_ms": fmt(over_runs(("create_to_train_job", "median_ms")), "ms"),
        "create_p95_ms": fmt(over_runs(("create_to_train_job", "p95_ms")), "ms"),
        "advance_median_ms": fmt(over_runs(("train_succeeded_to_convert_job", "median_ms")), "ms"),
        "advance_p95_ms": fmt(over_runs(("train_succeeded_to_convert_job", "p95_ms")), "ms"),
        "burst_s": fmt(over_runs(("burst", "all_train_jobs_s")), "s"),
        "rss_mb": fmt(over_runs(("operator_rss_mb",)), "MB"),
        "at_rest_rps": fmt(over_runs(("at_rest", "requests_per_s")), "requests/s", digits=2),
        "crs": str(args.crs),
        "child_event_requests": fmt(over_runs(("per_event", "child_event")), "requests", digits=1),
        "spec_edit_requests": fmt(over_runs(("per_event", "spec_edit")), "requests", digits=1),
        "child_deleted_requests": fmt(over_runs(("per_event", "child_deleted")), "requests", digits=1),
        "recreated_median_ms": fmt(over_runs(("per_event", "service_recreated", "median_ms")), "ms"),
    }
    rows = [
        [
            "CR created -> training Job exists",
            f"median {values['create_median_ms']}, p95 {values['create_p95_ms']}",
            "p95 <= 1 s",
        ],
        [
            "training Job succeeded -> conversion Job exists",
            f"median {values['advance_median_ms']}, p95 {values['advance_p95_ms']}",
            "p95 <= 1 s",
        ],
        [
            "API requests of a child event of a Ready ModelDeployment (its reconcile changes nothing)",
            values["child_event_requests"],
            "0 (reads from the watch cache)",
        ],
        [
            "API requests of a spec edit of a Ready ModelDeployment (reconcile + status write)",
            values["spec_edit_requests"],
            "<= 1",
        ],
        [
            "Service deleted from outside -> recreated: API requests, time",
            f"{values['child_deleted_requests']}; median {values['recreated_median_ms']}",
            "<= 1 request, <= 1 s",
        ],
        [f"{args.crs} CRs created at once -> every training Job exists", values["burst_s"], "<= 60 s"],
        [f"operator RSS with {args.crs + args.rounds} ModelDeployments", values["rss_mb"], "<= 150 MB"],
        [
            f"API requests at rest, {args.crs + args.rounds} ModelDeployments (1 Ready, builtin autoscaling)",
            values["at_rest_rps"],
            "<= 3/s",
        ],
    ]
    return write(
        "operator",
        command=command,
        runs=len(runs),
        tables={"figures": {"columns": ["what", "figure", "target"], "rows": rows}},
        values=values,
        data={"rounds": args.rounds, "crs": args.crs, "runs": runs},
        packages=["kopf", "kubernetes", "aiohttp"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh emulator + operator each")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--crs", type=int, default=100)
    parser.add_argument("--event-rounds", type=int, default=5, help="repeats of each per-event step")
    parser.add_argument("--rest-seconds", type=float, default=10.0, help="the at-rest window")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the operator (repeatable)")
    args = parser.parse_args()

    record_requests()
    runs = []
    for i in range(args.runs):
        results = run_once(args)
        print(f"-- run {i + 1}/{args.runs}")
        print(json.dumps(results, indent=2))
        runs.append(results)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    if not args.no_record:
        command = "python benchmarks/operator_bench.py " + " ".join(sys.argv[1:])
        print(f"wrote {record(runs, args, command.strip())}")
    ok = all(meets_targets(r) for r in runs)
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
