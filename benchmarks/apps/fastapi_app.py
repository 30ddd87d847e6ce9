"""The baseline a user would write by hand: FastAPI + uvicorn + onnxruntime answering the same V2 JSON.

Started by benchmarks/serving_bench.py in its own virtual environment:
`DIGITS_ONNX=model.onnx uvicorn fastapi_app:app --port N --no-access-log` (uvloop + httptools).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException, Request

options = ort.SessionOptions()
options.intra_op_num_threads = 1  # the server gets one core in the benchmark, as every server does
session = ort.InferenceSession(os.environ["DIGITS_ONNX"], options, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name
OUTPUT = session.get_outputs()[0].name
NAME = os.environ.get("DIGITS_NAME", "digits")
app = FastAPI()


@app.get("/v2/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.get("/v2/models/{name}/ready")
async def model_ready(name: str) -> dict[str, Any]:
    if name != NAME:
        raise HTTPException(404, f"unknown model {name}")
    return {"name": name, "ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> dict[str, Any]:
    if name != NAME:
        raise HTTPException(404, f"unknown model {name}")
    doc = await request.json()
    tensor = doc["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    y = session.run([OUTPUT], {INPUT: x})[0]
    return {
        "model_name": NAME,
        "id": doc.get("id"),
        "outputs": [{"name": OUTPUT, "shape": list(y.shape), "datatype": "FP32", "data": y.ravel().tolist()}],
    }
