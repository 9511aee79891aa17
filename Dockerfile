# syntax=docker/dockerfile:1
# importer: the daemon (`importer run`) in a small image that runs as a non-root user and works
# with a read-only root file system. Everything it writes (vault, SQLite state, log files) goes
# under /var/lib/importer: mount a volume there (or, on Kubernetes, emptyDirs plus a DynamoDB
# state table). The configuration is read from $IMPORTER_CONFIG (/etc/importer/config.yaml);
# use absolute paths under /var/lib/importer in it. See docs/deployment.md.
#
#   docker build -t importer:latest .
#   docker run --rm --read-only --tmpfs /tmp -v importer-data:/var/lib/importer \
#     -v "$PWD/config.yaml:/etc/importer/config.yaml:ro" \
#     -v "$PWD/encryption-string:/run/secrets/importer-encryption-string:ro" \
#     -e IMPORTER_ENCRYPTION_STRING_FILE=/run/secrets/importer-encryption-string \
#     -p 127.0.0.1:9464:9464 importer:latest
#   docker run --rm ... --entrypoint importer importer:latest secrets init   # other verbs

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment with the package and its dependencies -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/importer
COPY pyproject.toml README.md ./
COPY importer ./importer
# pip compiles every module to bytecode here: the runtime cannot write .pyc files.
RUN /opt/importer/bin/pip install --no-cache-dir . \
 && /opt/importer/bin/importer --version

# -- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="importer" \
      org.opencontainers.image.description="Keeps Jira Service Management Assets in step with Microsoft Entra ID"
ENV PATH=/opt/importer/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IMPORTER_CONFIG=/etc/importer/config.yaml
RUN groupadd --system --gid 10001 importer \
 && useradd --system --uid 10001 --gid importer --no-create-home --home-dir /var/lib/importer \
      --shell /usr/sbin/nologin importer \
 && install -d -o importer -g importer -m 0700 /var/lib/importer
COPY --from=build /opt/importer /opt/importer
WORKDIR /var/lib/importer
VOLUME ["/var/lib/importer"]
USER 10001:10001
# /healthz, /readyz and /metrics. The daemon listens on 127.0.0.1 unless told otherwise; in a
# container it must listen on all interfaces for probes and scrapes (publish the port with care).
EXPOSE 9464
# SIGTERM: finish in-flight writes, commit nothing partial, release the lease, exit within 25 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["importer", "run"]
CMD ["--listen", "0.0.0.0:9464"]
