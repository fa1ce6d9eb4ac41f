# DeltaStream: one image for every component; the subcommand picks the role, e.g.
#   docker run --rm deltastream serve api      (see docker-compose.kafka.yml, k8s/)
# Healthchecks are set per service by compose / Kubernetes, not here.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: install the package and its dependencies into /opt/venv ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone (with an empty stand-in package), so this
# layer is rebuilt only when the dependency list changes, not on every source edit.
COPY pyproject.toml README.md ./
RUN mkdir deltastream && touch deltastream/__init__.py \
 && pip install --no-cache-dir . \
 && pip uninstall --yes deltastream \
 && rm -rf deltastream build ./*.egg-info

# Then the project itself.
COPY . .
RUN pip install --no-cache-dir --no-deps . \
 && deltastream --help >/dev/null

# ---- runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="deltastream" \
      org.opencontainers.image.description="Options market-data pipeline: feed, Kafka stream processors, MongoDB/Redis sinks, REST and WebSocket services" \
      org.opencontainers.image.licenses="MIT"

# Non-root user whose home is the only writable path the app needs (data dir, Faust
# state, temp files); Kubernetes mounts an emptyDir there and keeps the root fs read-only.
RUN groupadd --system --gid 10001 deltastream \
 && useradd --system --uid 10001 --gid deltastream --create-home \
      --home-dir /var/lib/deltastream --shell /usr/sbin/nologin deltastream

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DELTASTREAM_HOST=0.0.0.0 \
    DELTASTREAM_DATA_DIR=/var/lib/deltastream

USER 10001:10001
WORKDIR /var/lib/deltastream

# api 8000, auth 8001, socket 8002, storage 8003, analytics 8004, logs 8005, ai 8006
EXPOSE 8000 8001 8002 8003 8004 8005 8006

ENTRYPOINT ["deltastream"]
CMD ["--help"]
