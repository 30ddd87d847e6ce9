# syntax=docker/dockerfile:1.7
# The trainer: TensorFlow's GPU image (CUDA + cuDNN + a GPU TensorFlow) plus the train extra, for
# `trtforge train` in the training Jobs (single worker or MultiWorkerMirroredStrategy via TF_CONFIG).
#   docker build -f docker/trainer.Dockerfile -t REGISTRY/trtforge/trainer:0.1.0 .
# The train extra pins tensorflow-cpu for CPU machines; here the base image's GPU TensorFlow (the same
# 2.21 release) takes its place, so it is left out of the requirements.
ARG TENSORFLOW_IMAGE=tensorflow/tensorflow:2.21.0-gpu

FROM ${TENSORFLOW_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/requirements.py docker/
# a venv that sees the base image's TensorFlow (system site-packages) and adds the pinned rest
RUN python3 -m venv --system-site-packages /opt/trtforge \
 && python3 docker/requirements.py train s3 --without tensorflow-cpu > /tmp/requirements.txt \
 && /opt/trtforge/bin/pip install -r /tmp/requirements.txt
COPY runtime/ runtime/
COPY operator/ operator/
RUN /opt/trtforge/bin/pip install --no-deps . \
 && /opt/trtforge/bin/python -c "import tensorflow as tf; assert tf.__version__.startswith('2.21'), tf.__version__"

FROM ${TENSORFLOW_IMAGE}
RUN groupadd --gid 10001 trtforge \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin trtforge
COPY --from=build /opt/trtforge /opt/trtforge
ENV PATH=/opt/trtforge/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=1 KERAS_HOME=/tmp/.keras
USER 10001:10001
ENTRYPOINT ["trtforge"]
CMD ["train", "--help"]
