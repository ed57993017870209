# syntax=docker/dockerfile:1
#
# Production image for Aftercare: one image, three roles picked by the command.
#
#   docker build -t aftercare .
#   docker run aftercare api          # gRPC API server (the default command)
#   docker run aftercare worker       # Temporal worker
#   docker run aftercare db upgrade   # Alembic migrations
#
# Stages:
#   base     python:3.11-slim + uv, shared by the two below
#   protogen the locked dev environment (grpcio-tools lives there) generates the
#            protobuf/gRPC modules; it never reaches the final image
#   runtime  the locked runtime environment (--no-dev), the sources, the
#            generated modules, a non-root user

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
RUN pip install uv==0.13.9


FROM base AS protogen
WORKDIR /build
COPY pyproject.toml uv.lock ./
# The dev group is included on purpose: it carries grpcio-tools. The project
# itself is not needed to run protoc, so only its locked dependencies go in.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-install-project
COPY proto ./proto
RUN .venv/bin/python -m grpc_tools.protoc -Iproto \
        --python_out=proto --grpc_python_out=proto \
        proto/aftercare/v1/*.proto \
    && ls proto/aftercare/v1/*_pb2.py proto/aftercare/v1/*_pb2_grpc.py


FROM base AS runtime
ARG APP_UID=10001
ARG APP_GID=10001
LABEL org.opencontainers.image.title="aftercare" \
      org.opencontainers.image.description="Post-purchase journey engine: gRPC API, Temporal worker, migrations" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${APP_GID}" aftercare \
    && useradd --system --uid "${APP_UID}" --gid aftercare \
        --home-dir /var/lib/aftercare --shell /usr/sbin/nologin aftercare \
    && install -d -o aftercare -g aftercare -m 0750 /var/lib/aftercare

WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    AFTERCARE_STATE_DIR=/var/lib/aftercare

# Dependencies first, in their own layer, so a source change does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

COPY README.md ./
COPY engine ./engine
COPY workflows ./workflows
COPY activities ./activities
COPY clients ./clients
COPY proto ./proto
# Generated code comes from the protogen stage, never from the build context.
COPY --from=protogen /build/proto/aftercare/v1/ ./proto/aftercare/v1/

# Installs the project itself (the `aftercare` console script). The install is
# editable as uv does by default: it puts /app and /app/proto on sys.path
# (pyproject's dev-mode-dirs), which is where the sources and generated code sit.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && aftercare --help > /dev/null

USER ${APP_UID}:${APP_GID}
EXPOSE 50051
# Python turns SIGINT into a clean asyncio cancellation, so `docker stop` lets the
# API drain and the worker finish its in-flight activities.
STOPSIGNAL SIGINT
ENTRYPOINT ["aftercare"]
CMD ["api"]
