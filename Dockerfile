# One image for both roles:
#   API:     docker run -p 8000:8000 IMAGE                      (execution-service serve --host 0.0.0.0)
#   worker:  docker run --no-healthcheck IMAGE execution-service worker
#   migrate: docker run --rm IMAGE execution-service migrate
# Production settings come from the environment: EXEC_DATABASE_URL, EXEC_ENCRYPTION_KEYS, ...

# --- builder: install the project and its dependencies into a virtualenv ---------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /build
# pyproject.toml names README.md as the package readme, so the build needs it.
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --upgrade pip && pip install .

# --- runtime: the virtualenv plus what migrations need, as a non-root user -------------------
FROM python:3.11-slim AS runtime

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EXEC_ENV=production

RUN groupadd --system app && useradd --system --gid app --home-dir /app --no-create-home app

COPY --from=builder /opt/venv /opt/venv

# `serve` and `migrate` look for alembic.ini in the working directory; it points at ./migrations.
WORKDIR /app
COPY alembic.ini ./
COPY migrations/ migrations/

USER app

EXPOSE 8000

# The API's liveness, on the port `serve` binds (EXEC_PORT). The worker serves no HTTP: run it
# with --no-healthcheck (docker-compose.yml disables the check for it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/health' % os.environ.get('EXEC_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["execution-service", "serve", "--host", "0.0.0.0"]
