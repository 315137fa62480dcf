# syntax=docker/dockerfile:1
# taskhub image: `taskhub serve` by default; the same image runs `taskhub worker` and
# `taskhub migrate` (see docker-compose.yml). Build: docker build -t taskhub .

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- builder
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

# uv comes from PyPI (no download from anywhere else); keep it in step with the Makefile.
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app

# 1) The locked third-party dependencies only: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# 2) The project itself, installed as a regular (non-editable) package, so the venv alone is
#    the application: the Alembic migrations ship inside it (taskhub/migrations).
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
    && /app/.venv/bin/python -c "import taskhub.migrate as m; assert m.head_revision(), 'no migrations packaged'"

# ---------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="taskhub" \
      org.opencontainers.image.description="Task management (v1) and commerce (v2) API, and its event worker"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/app/.venv/bin:${PATH}" \
    ENVIRONMENT=prod

# An unprivileged user with a fixed uid; its home is the working directory.
RUN groupadd --system --gid 10001 taskhub \
    && useradd --system --uid 10001 --gid taskhub --home-dir /srv/taskhub --create-home \
       --shell /usr/sbin/nologin taskhub

# Only the virtual environment: no uv, no pip cache, no sources, no dev dependencies.
COPY --from=builder /app/.venv /app/.venv

WORKDIR /srv/taskhub
USER 10001:10001

EXPOSE 8000

# Liveness through /health with the standard library (the slim image has no curl).
# HEALTHCHECK_URL lets a container that serves on another port point it elsewhere.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/health'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

# Same commands as `make run` (which runs `taskhub migrate` first; here the compose
# `migrate` service, or `docker run ... taskhub-image migrate`, does that).
ENTRYPOINT ["taskhub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
