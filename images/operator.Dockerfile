# The operator: Kopf, the Kubernetes client, pydantic. No torch, no scikit-learn.
# Build from the repository root: docker build -f images/operator.Dockerfile -t ghcr.io/modelfleet/operator:0.1.0 .
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install . && rm -rf /src
WORKDIR /
USER 65532:65532
ENTRYPOINT ["modelfleet"]
CMD ["operator", "run"]
