"""docker-cd steps: build, scan, tag, push, deploy and verify Docker images from CI jobs.

    cli          the edge: options and variables -> settings -> validate -> execute -> outputs
    context      what a command runs with: the log, the variables, clients built on first use
    commands/    one module per step (build, push, tag, scan, template render, deploy, verify,
                 rollback, releases, register, gate) and the inputs they share
    runtime/     errors and exit codes, the declaration of inputs, log, masking, outputs, retries
    images/      references, tag schemes, registry credentials, the engine, `docker push`
    registry/    the registry HTTP API client (manifests, tags, blobs; auth; RegistryError)
    scanning/    findings, the scan policy, reports, Trivy
    template/    the Compose application template: load, interpolate, merge, normalise
    release/     the release record and its history
    targets/     where a release runs: docker/ (one engine) and swarm/ (a Docker Swarm)
    service/     the promotion service's client and the reports deploy and verify send it

Commands sit on libraries, never on each other; libraries never import a command or the CLI
(the import-linter contracts in pyproject.toml say so; `lint-imports` checks them).
"""
