"""docker-cd steps: build, scan, tag, push, deploy and verify Docker images from CI jobs."""
