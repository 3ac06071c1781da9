"""The service's use cases: what the API, the CLI, the worker and GitLab's events ask of it.

A use case that writes opens its transaction itself (db.write_transaction), so it commits
once with its audit entries, or not at all; called inside another one, it joins it.
"""
