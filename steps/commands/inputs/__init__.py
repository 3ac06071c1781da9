"""Inputs several commands share, each declared once: single inputs a command takes as its own
field (a commit SHA, the job URL), and groups a command nests whole (registry credentials, the
promotion service, the environment on its target). One small module per concern, so a command
loads only the declarations it uses (each settings class costs start-up time).

    ci           the CI system's variables, one input each: commit, ref, tag, pipeline, job
    pipeline     Pipeline: the CI pipeline a step runs in, as a group
    registry     retries of a registry call; RegistryAuth: where credentials are found
    image        ImagePush: the image a step builds or pushes
    service      Service: the promotion service a step reports to or asks
    environment  the environment on its target, the template, the release record's context
"""
