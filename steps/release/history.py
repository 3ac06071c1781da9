"""The history rules every target shares, in plain Python: the release serving now, the one a
rollback restores, and the history as a table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from steps.release.record import ROLLED_BACK, SUCCEEDED, Release
from steps.runtime.errors import Refused, UsageError


def history(records: Iterable[Release]) -> list[Release]:
    """Newest first, with releases that a later rollback left marked rolled-back."""
    ordered = sorted(records, key=lambda r: (r.created, r.id), reverse=True)
    left = {r.previous for r in ordered if r.kind == "rollback" and r.status == SUCCEEDED}
    return [replace(r, status=ROLLED_BACK) if r.id in left and r.status == SUCCEEDED else r
            for r in ordered]


def current(records: Iterable[Release]) -> Release | None:
    """The release serving now: the newest one that succeeded."""
    return next((r for r in sorted(records, key=lambda r: (r.created, r.id), reverse=True)
                 if r.status == SUCCEEDED), None)


def rollback_source(records: Iterable[Release], to: str | None = None,
                    image: str | None = None, release_id: int | None = None) -> Release:
    """The record a rollback restores.

    With `to`: that record, if it succeeded. With `release_id` or `image` (what the promotion
    service chose, when it knows no record id): the newest record of that release that
    succeeded, else of that image (records made before releases had ids). Else the
    newest release before the current one that succeeded, was not itself left by a rollback,
    and differs from what runs now.
    """
    records = list(records)
    now = current(records)
    if now is None:
        raise Refused("nothing to roll back: no release of this environment has succeeded yet")
    if to:
        chosen = next((r for r in records if r.id == to), None)
        if chosen is None:
            known = ", ".join(r.id for r in history(records)[:5])
            raise UsageError(f"no release {to!r} in this environment (recent: {known})", "to")
        if chosen.status != SUCCEEDED:
            raise Refused(f"release {to} {chosen.status}; a failed release is never a rollback "
                          "target")
        return chosen
    if release_id is not None or image:
        good = [r for r in sorted(records, key=lambda r: (r.created, r.id), reverse=True)
                if r.status == SUCCEEDED]
        chosen = next((r for r in good if release_id is not None and r.release_id == release_id),
                      None) or next((r for r in good if image and r.image == image), None)
        if chosen is None:
            what = f"release {release_id}" if release_id is not None else image
            raise Refused(f"no record of {what} succeeded on this target; the promotion "
                          "service's history and the target's disagree")
        return chosen
    for release in history(records):
        if (release.created, release.id) >= (now.created, now.id):
            continue
        if release.status == SUCCEEDED and not release.same_content(now):
            return release
    raise Refused(f"nothing to roll back to: no release before {now.id} succeeded")


def table(releases: list[Release]) -> str:
    """The history as a readable table for the log."""
    rows = [("RECORD", "RELEASE", "STATUS", "KIND", "CREATED", "COMMIT", "IMAGES")]
    for r in releases:
        images = ", ".join(f"{s}={_short(d)}" + ("*" if s in r.members else "")
                           for s, d in sorted(r.images.items()))
        kind = f"rollback to {r.rollback_of}" if r.kind == "rollback" else r.kind
        rows.append((r.id, "" if r.release_id is None else str(r.release_id), r.status, kind,
                     r.created, (r.commit or "")[:12], images))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    legend = ("\n(* built by the pipeline: a member of the release; the others are third-party "
              "images)" if any(r.members for r in releases) else "")
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  "
                     + row[-1] for row in rows) + legend


def _short(digest: str) -> str:
    repo, _, dig = digest.rpartition("@")
    return f"{repo.rsplit('/', 1)[-1]}@{dig[:19]}" if repo else digest[:19]
