"""Images: how they are named and tagged, where their credentials are, and the engine that
builds and pushes them.

    reference     image references parsed the way the Docker CLI reads them (pure)
    tag_schemes   the tags a pipeline gives an image: sha, ref, semver (pure)
    credentials   registry credentials from CI variables, DOCKER_AUTH_CONFIG, the Docker config
    engine        the Docker engine client (docker-py), built once with its errors wrapped
    push          `docker push` of an image's tags through the engine, with retries
"""
