# syntax=docker/dockerfile:1
#
# One image for every snapdeploy service; the service is the argument:
#
#   docker build -t snapdeploy .
#   docker run --rm -e HTTP_PORT=8082 snapdeploy services.storage
#
# ENTRYPOINT is `python -m`, so the command is the module (services.planner, services.storage,
# services.hypervisor_agent, services.audit; services.api later). Configuration is environment
# only (see README.md, "Running a service").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with snapdeploy and its runtime dependencies (no dev extras) ----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/snapdeploy
WORKDIR /src

# Dependencies first, read from pyproject.toml, so that a source change does not reinstall them.
# Every runtime dependency ships manylinux wheels for CPython 3.11: no compiler is needed.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
 && /opt/snapdeploy/bin/pip install -r /tmp/requirements.txt

# Then the project itself, as a regular (non-editable) install: the packages, the SQL migrations
# and the contract samples (package data) land in site-packages; the source tree stays here.
# README.md is read by the build backend (pyproject `readme`). The import check runs from /, so
# it imports the installed packages, not ./services.
COPY README.md ./
COPY contracts ./contracts
COPY shared ./shared
COPY services ./services
COPY snapdeploy ./snapdeploy
RUN /opt/snapdeploy/bin/pip install --no-deps . \
 && cd / \
 && /opt/snapdeploy/bin/python -c 'import services.planner.main, services.storage.main, services.hypervisor_agent.main, services.audit.main'

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="snapdeploy" \
      org.opencontainers.image.description="Deploy VMware VMs straight from VM snapshots: event-driven services on RabbitMQ"

# A fixed numeric uid/gid: Kubernetes can only verify runAsNonRoot for a numeric USER.
RUN groupadd --system --gid 10001 snapdeploy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin snapdeploy

COPY --from=build /opt/snapdeploy /opt/snapdeploy

# Bytecode was compiled by pip at install time; never write it at run time (the root filesystem
# is read-only under Kubernetes). HTTP_HOST: the settings default is 127.0.0.1, which nothing
# outside the container (probes, Prometheus, other containers) could reach.
ENV PATH=/opt/snapdeploy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HTTP_HOST=0.0.0.0

# `python -m` puts the working directory first on sys.path: keep it a read-only one with no
# Python packages in it (the code is in /opt/snapdeploy's site-packages).
WORKDIR /
USER 10001:10001

# HTTP_PORT differs per service (planner 8081, storage 8082, agent 8083, audit 8084, settings
# defaults). This check uses HTTP_PORT when it is set (docker-compose.yml sets it on every
# service) and the default CMD's port, 8081, otherwise: running another service without
# HTTP_PORT reports it unhealthy. Kubernetes ignores HEALTHCHECK and uses its own probes.
# start-period: /healthz is only served after migrations, the broker connection and (agent)
# the vCenter login.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('HTTP_PORT') or '8081'), timeout=4)"]

# Exec form: python is PID 1 and receives SIGTERM itself; the service then stops consuming,
# lets in-flight handlers finish (SHUTDOWN_GRACE, default 30 s), flushes its outbox and exits 0.
# It starts no child processes, so PID 1 has no zombies to reap and needs no init.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m"]
CMD ["services.planner"]
