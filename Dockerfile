# Dyna-Cache replica: the serving dependencies only (no torch, no scikit-learn, no training/
# or devtools/) and the models the project ships (models/: the embedder and the pair model,
# packaged as index/shipped by setup.py). Nothing is exported or trained during the build.
#
#   docker build -t dyna-cache .
#
# Build argument, for machines without Docker Hub:
#   BASE_IMAGE   any Debian-like image with python3 (3.11+) and its venv module
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE}
# the version, from service/version.py (deploy/podman/build_images.sh passes it)
ARG VERSION=unknown
LABEL org.opencontainers.image.title="Dyna-Cache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY service ./service
COPY index ./index
COPY models ./models
# a non-editable install: the code and the shipped models land in site-packages
RUN pip install . && rm -rf /src && useradd --create-home --uid 10001 app \
    && mkdir -p /app/data && chown app /app/data
WORKDIR /app

USER app
ENV DYNACACHE_HOST=0.0.0.0 \
    DYNACACHE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["python", "-m", "service"]
