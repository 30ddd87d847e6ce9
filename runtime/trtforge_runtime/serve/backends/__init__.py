"""Inference backends behind one protocol (`base.Backend`): onnxruntime, TensorRT and TensorRT-RTX."""
