# syntax=docker/dockerfile:1.7
# The operator: kopf + the kubernetes client, no TensorFlow, no TensorRT (about 150 MB).
#   docker build -f docker/operator.Dockerfile -t REGISTRY/trtforge/operator:0.1.0 .
# Base images are pinned to exact tags; pin digests too in your registry mirror (docs/install.md).
ARG PYTHON_IMAGE=python:3.12.12-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/requirements.py docker/
RUN python -m venv /opt/trtforge \
 && python docker/requirements.py operator > /tmp/requirements.txt \
 && /opt/trtforge/bin/pip install -r /tmp/requirements.txt
COPY runtime/ runtime/
COPY operator/ operator/
RUN /opt/trtforge/bin/pip install --no-deps ".[operator]" \
 && /opt/trtforge/bin/trtforge --help >/dev/null

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 trtforge \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin trtforge
COPY --from=build /opt/trtforge /opt/trtforge
# read-only root filesystem: nothing writes outside /tmp (an emptyDir in the pod)
ENV PATH=/opt/trtforge/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8090
ENTRYPOINT ["trtforge"]
CMD ["operator"]
