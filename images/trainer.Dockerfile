# The trainer runtime on CPU: scikit-learn, PyTorch (CPU wheels), pyarrow, object-store readers.
# docker build -f images/trainer.Dockerfile -t ghcr.io/modelfleet/trainer:0.1.0 .
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4,<3" \
 && pip install ".[trainer,trainer-cloud]" && rm -rf /src
WORKDIR /
USER 65532:65532
ENTRYPOINT ["python", "-m", "modelfleet.trainer"]
