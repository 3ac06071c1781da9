"""The steps' side of the promotion service: its JSON API client, and the reports deploy,
rollback and verify send it.

    client   ServiceClient: one request method, retries, the service's answers as step errors
    reports  Reporter: a deployment started, failed or succeeded; a verification's outcome
    commits  a commit's registered images and where each was verified (build once, release tags)
"""
