"""trtforge's runtime package: the ModelDeployment spec, the CLI, training, conversion and serving.

Imports here stay light (no TensorFlow, TensorRT or onnxruntime at import time) so that the operator
image, which has none of them, can use the spec and the CLI.
"""

__version__ = "0.1.0"
