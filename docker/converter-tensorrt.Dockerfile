# syntax=docker/dockerfile:1.7
# The GPU converter for backend tensorrt: full TensorRT builds each engine on the GPU kind it will serve
# on (the operator pins one Job per compute capability) and verifies it with pycuda.
#   docker build -f docker/converter-tensorrt.Dockerfile -t REGISTRY/trtforge/converter-tensorrt:0.1.0 .
# TENSORRT_VERSION must equal the server image's: a serialized engine only loads in the TensorRT that
# built it. The tensorrt-cuNN wheels bring TensorRT's libraries; the CUDA base brings the CUDA runtime.
# CUDA 13 needs an R580+ driver on the GPU nodes; the CUDA 12 variant runs on R525+ (R535, R550, R570):
#   docker build --build-arg CUDA_VERSION=12.9.1 ...   (NVIDIA's -cu12 wheels of the same versions)
ARG CUDA_VERSION=13.0.2
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04
ARG TENSORRT_VERSION=11.4.0.106
ARG PYCUDA_VERSION=2026.1

# pycuda has no wheel: compile it once against the CUDA headers with nvcc
FROM ${CUDA_DEVEL_IMAGE} AS pycuda
ARG PYCUDA_VERSION
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-dev python3-venv build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir wheel \
 && CUDA_ROOT=/usr/local/cuda /opt/build/bin/pip wheel --no-cache-dir --no-deps -w /wheels "pycuda==${PYCUDA_VERSION}"

FROM ${CUDA_RUNTIME_IMAGE} AS build
ARG TENSORRT_VERSION
ARG CUDA_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/requirements.py docker/
COPY --from=pycuda /wheels /wheels
RUN python3 -m venv /opt/trtforge \
 && python3 docker/requirements.py engine s3 --with train:scikit-learn,fsspec \
      --without tensorrt-rtx-cu13 --cuda "${CUDA_VERSION%%.*}" > /tmp/requirements.txt \
 && /opt/trtforge/bin/pip install -r /tmp/requirements.txt "tensorrt-cu${CUDA_VERSION%%.*}==${TENSORRT_VERSION}" \
      /wheels/pycuda-*.whl
COPY runtime/ runtime/
COPY operator/ operator/
RUN /opt/trtforge/bin/pip install --no-deps .

FROM ${CUDA_RUNTIME_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 trtforge \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin trtforge
COPY --from=build /opt/trtforge /opt/trtforge
ENV PATH=/opt/trtforge/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
ENTRYPOINT ["trtforge"]
CMD ["convert", "--help"]
