# The model server runtime: aiohttp + orjson + numpy (REST), grpcio (gRPC), scikit-learn (skops) and PyTorch (CPU) models.
# docker build -f images/server.Dockerfile -t ghcr.io/modelfleet/server:0.1.0 .
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4,<3" \
 && pip install ".[server]" && rm -rf /src
WORKDIR /
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "modelfleet.server"]
