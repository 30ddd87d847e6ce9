# syntax=docker/dockerfile:1.7
# The CPU converter: ONNX -> TensorRT-RTX engines built ahead of time for each compute capability (no GPU
# needed), plus the onnxruntime artifact and the accuracy gate. Runs `trtforge convert` in the CPU Job.
#   docker build -f docker/converter.Dockerfile -t REGISTRY/trtforge/converter:0.1.0 .
ARG PYTHON_IMAGE=python:3.12.12-slim-trixie
# CUDA major of the TensorRT-RTX wheel: build the CUDA 12 variant (--build-arg CUDA_MAJOR=12) next to the
# CUDA 12 server image, whose TensorRT-RTX runtime loads these engines
ARG CUDA_MAJOR=13

FROM ${PYTHON_IMAGE} AS build
ARG CUDA_MAJOR
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/requirements.py docker/
# dependencies first (a layer that survives source changes): the engine and s3 extras, and only the
# dataset readers of the train extra (spec.model.source.dataset), never TensorFlow
RUN python -m venv /opt/trtforge \
 && python docker/requirements.py engine s3 --with train:scikit-learn,fsspec --cuda "${CUDA_MAJOR}" \
      > /tmp/requirements.txt \
 && /opt/trtforge/bin/pip install -r /tmp/requirements.txt
COPY runtime/ runtime/
COPY operator/ operator/
RUN /opt/trtforge/bin/pip install --no-deps . \
 && /opt/trtforge/bin/python -c "import tensorrt_rtx, onnxruntime; print(tensorrt_rtx.__version__)"

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 trtforge \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin trtforge
COPY --from=build /opt/trtforge /opt/trtforge
ENV PATH=/opt/trtforge/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["trtforge"]
CMD ["convert", "--help"]
