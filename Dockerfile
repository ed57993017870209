# syntax=docker/dockerfile:1
#
# Production image for Aftercare: one image, every role picked by the command.
#
#   docker build -t aftercare .
#   docker run aftercare api          # gRPC API server (the default command)
#   docker run aftercare worker       # Temporal worker
#   docker run aftercare http         # HTTP app: Twilio callbacks, customer links
#   docker run aftercare codec        # codec server for the Temporal UI
#   docker run aftercare db upgrade   # Alembic migrations
#   docker run aftercare secrets init --secrets-dir /out   # a deployment's secrets
#
# Stages:
#   base     python:3.11-slim + uv, for the two build stages below
#   protogen the `codegen` dependency group alone (grpcio-tools) generates the
#            protobuf/gRPC modules
#   build    the locked runtime environment (--no-dev: no Temporal dev server or
#            test server, no SMTP sink, no test or lint tools), the project, the
#            sources and the generated modules, all under /app
#   runtime  a fresh python:3.11-slim with /app copied in and a non-root user; uv
#            and the build stages' caches stay behind
#
# The image holds no secret: every process reads AFTERCARE_SECRET_KEY,
# AFTERCARE_CODEC_KEYS (and the codec server AFTERCARE_CODEC_TOKEN) from its
# environment or from files (AFTERCARE_<NAME>_FILE); `aftercare secrets init` makes them.

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
# Only protoc and its plugins: neither the project nor its runtime dependencies.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-install-project --only-group codegen
COPY proto ./proto
RUN .venv/bin/python -m grpc_tools.protoc -Iproto \
        --python_out=proto --grpc_python_out=proto \
        proto/aftercare/v1/*.proto \
    && ls proto/aftercare/v1/*_pb2.py proto/aftercare/v1/*_pb2_grpc.py


FROM base AS build
WORKDIR /app
ENV UV_PROJECT_ENVIRONMENT=/app/.venv

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
# (pyproject's dev-mode-dirs), which is where the sources and generated code sit,
# here and in the runtime stage alike.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev


FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
ARG APP_GID=10001
LABEL org.opencontainers.image.title="aftercare" \
      org.opencontainers.image.description="Post-purchase journey engine: gRPC API, Temporal worker, HTTP app, codec server, migrations" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${APP_GID}" aftercare \
    && useradd --system --uid "${APP_UID}" --gid aftercare \
        --home-dir /var/lib/aftercare --shell /usr/sbin/nologin aftercare \
    && install -d -o aftercare -g aftercare -m 0750 /var/lib/aftercare

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH \
    AFTERCARE_STATE_DIR=/var/lib/aftercare

# Owned by root and read-only to the service: it cannot change its own code.
COPY --from=build /app /app

# Every command a deployment runs starts without the development-only packages, and
# none of them is here.
RUN aftercare --help > /dev/null \
    && for command in api worker http codec consume db health secrets; do \
        aftercare "$command" --help > /dev/null || exit 1; \
    done \
    && python -c "import importlib.util as u, sys; \
dev = [m for m in ('pytest', 'hypothesis', 'mypy', 'grpc_tools') if u.find_spec(m)]; \
sys.exit(f'development packages in the image: {dev}' if dev else 0)" \
    && ! command -v temporal && ! command -v temporal-test-server && ! command -v uv

USER ${APP_UID}:${APP_GID}
# gRPC API, HTTP app, codec server (each container runs one of them).
EXPOSE 50051 8000 8234
# SIGTERM (docker stop, compose, Kubernetes): the API drains its calls, the worker
# stops polling and lets activities in flight finish for up to
# AFTERCARE_WORKER_SHUTDOWN_GRACE_SECONDS (give the container more than that).
STOPSIGNAL SIGTERM
ENTRYPOINT ["aftercare"]
CMD ["api"]
