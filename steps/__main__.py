"""`python -m steps <step>`: the same as `docker-cd <step>`."""

from steps.cli import main

main()
