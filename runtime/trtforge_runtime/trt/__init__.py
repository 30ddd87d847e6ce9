"""TensorRT library code shared by conversion and serving.

`library` imports `tensorrt` or `tensorrt_rtx` by backend name, owns the one logger per process and maps
compute capabilities; `runner` deserializes and runs engines. Nothing heavy is imported here, so that
`import trtforge_runtime.trt` stays cheap on machines without the libraries.
"""
