# The trainer runtime with CUDA: PyTorch's CUDA 12.4 wheels bring their own CUDA runtime libraries; the node needs
# an NVIDIA driver and the device plugin (nvidia.com/gpu). Same code as the CPU image: it uses CUDA when present.
# docker build -f images/trainer-cuda.Dockerfile -t ghcr.io/modelfleet/trainer:0.1.0-cuda12.4 .
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --index-url https://download.pytorch.org/whl/cu124 "torch>=2.4,<3" \
 && pip install ".[trainer,trainer-cloud]" && rm -rf /src
WORKDIR /
USER 65532:65532
ENTRYPOINT ["python", "-m", "modelfleet.trainer"]
