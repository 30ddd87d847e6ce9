"""trtforge's Kubernetes operator: kopf handlers, reconcilers (spec -> desired children), autoscaler.

Needs only the `operator` extra (kopf, kubernetes): never imports TensorFlow, TensorRT or onnxruntime.
"""
