"""Releases: the record of what reached an environment, and the rules of its history.

    record   Release (as stored on the target), release ids, statuses
    history  the release serving now, the source of a rollback, the history as a table
    members  the images a pipeline built, one per Compose service (CD_IMAGE_<NAME>)
"""

from steps.release import members
from steps.release.history import current, history, rollback_source, table
from steps.release.record import FAILED, ROLLED_BACK, SUCCEEDED, Release, new_release_id, now_iso

__all__ = ["FAILED", "ROLLED_BACK", "SUCCEEDED", "Release", "current", "history",
           "members", "new_release_id", "now_iso", "rollback_source", "table"]
