"""`trtforge serve`: the Open Inference Protocol (KServe V2) runtime.

Layers, outside in: front ends (`rest`, `grpc*`) decode the wire format into `types`; the `dataplane`
validates requests against the model's metadata and counts them in `metrics`; the `batcher` merges
requests into batches for a `backends` implementation chosen by `selection` and checked by `verify`.
`server`/`command` own the lifecycle. Nothing heavy is imported by this package's `__init__`.
"""
