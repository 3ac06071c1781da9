"""Bulk seeding shared by the benchmarks: images inserted in one statement get their one-member
releases the way migration 0006 gives them (the release's id is the image's)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from promotion_service.domain.releases import DEFAULT_MEMBER, Member, identity


def one_member_releases(session: Session, project_id: int,
                        images: list[tuple[int, dict]]) -> None:
    """A release of one member for each (image id, image row) just inserted, carrying the
    row's pipeline facts."""
    session.execute(text(
        "INSERT INTO releases (id, project_id, digest, member_count, tags, commit_sha, "
        "commit_time, registered_by, created_at) VALUES (:id, :project_id, :digest, 1, '[]', "
        ":commit_sha, :commit_time, :registered_by, CURRENT_TIMESTAMP)"),
        [{"id": image_id, "project_id": project_id, "commit_sha": row.get("commit_sha"),
          "commit_time": row.get("commit_time"), "registered_by": row["registered_by"],
          "digest": identity([Member(DEFAULT_MEMBER, row["repository"], row["digest"])], None)}
         for image_id, row in images])
    session.execute(text(
        "INSERT INTO release_members (release_id, name, image_id, repository, digest, built) "
        "VALUES (:id, :name, :id, :repository, :digest, :built)"),
        [{"id": image_id, "name": DEFAULT_MEMBER, "repository": row["repository"],
          "digest": row["digest"], "built": True} for image_id, row in images])


PROJECTS = 10  # history_statements spreads the releases over this many projects
MEMBERS = 10  # and gives each this many images


def history_statements() -> list[str]:
    """INSERT ... SELECT generate_series statements writing a long history at database speed.

    Parameters: :first (the first of :projects consecutive project ids, their environments
    test, staging and production made), :images (in :images / :members releases of :members,
    ids from 1), :audit entries, :last (releases after it are candidates: verified in test,
    never promoted). Every image is scanned; each release is deployed and verified in test;
    every 4th up to :last is promoted, deployed and verified in staging, every 16th approved
    and live in production."""
    release_of = "((g - 1) / :members + 1)"
    statements = [
        """INSERT INTO releases (id, project_id, digest, member_count, commit_sha, ref, tags,
             registered_by, created_at)
           SELECT r, :first + r % :projects, 'sha256:' || md5('r' || r) || md5('s' || r),
                  :members, md5('c' || r) || 'abcdef01', 'main', '[]', 'ci',
                  now() - make_interval(secs => :releases - r)
           FROM generate_series(1, :releases) r""",
        f"""INSERT INTO images (id, project_id, repository, digest, commit_sha, ref, tags,
              registered_by, created_at)
            SELECT g, :first + {release_of} % :projects,
                   'registry.local/bench/app-' || {release_of} % :projects || '/m'
                     || (g - 1) % :members,
                   'sha256:' || lpad(to_hex(g), 64, '0'), md5('c' || {release_of}) || 'abcdef01',
                   'main', '[]', 'ci', now() - make_interval(secs => :releases - {release_of})
            FROM generate_series(1, :images) g""",
        f"""INSERT INTO release_members (release_id, name, image_id, repository, digest, built)
            SELECT {release_of.replace('g', 'id')}, 'm' || (id - 1) % :members, id, repository,
                   digest, true FROM images""",
        "SELECT setval(pg_get_serial_sequence('images', 'id'), :images)",
        "SELECT setval(pg_get_serial_sequence('releases', 'id'), :releases)",
        """INSERT INTO scans (image_id, scanner, counts, findings, actor, created_at)
           SELECT image_id, 'trivy', '{"critical": 0, "high": 0}', '[]', 'ci', now()
           FROM release_members""",
        """WITH d AS (
             INSERT INTO deployments (release_id, environment_id, state, record_id, actor,
               created_at, updated_at)
             SELECT r.id, e.id, 'succeeded', 'rec-t' || r.id, 'ci', r.created_at, r.created_at
             FROM releases r JOIN environments e ON e.project_id = r.project_id
               AND e.name = 'test'
             RETURNING id, release_id, environment_id, record_id, created_at),
           v AS (
             INSERT INTO verifications (release_id, environment_id, passed, details, actor,
               created_at)
             SELECT release_id, environment_id, true, '{}', 'ci', created_at FROM d)
           INSERT INTO rollouts (release_id, environment_id, deployment_id, record_id,
             created_at, verified_at)
           SELECT release_id, environment_id, id, record_id, created_at, created_at FROM d""",
    ]
    for env, every in (("staging", 4), ("production", 16)):
        statements.append(f"""
           WITH p AS (
             INSERT INTO promotions (release_id, environment_id, state, kind, requested_by,
               created_at, updated_at)
             SELECT r.id, e.id, 'verified', 'manual', 'rm', r.created_at, r.created_at
             FROM releases r JOIN environments e ON e.project_id = r.project_id
               AND e.name = '{env}'
             WHERE r.id % {every} = 0 AND r.id <= :last
             RETURNING id, release_id, environment_id, created_at),
           o AS (
             INSERT INTO outbox (promotion_id, kind, payload, state, attempts, available_at,
               created_at, sent_at)
             SELECT id, 'trigger_pipeline', '{{}}', 'sent', 1, created_at, created_at,
                    created_at FROM p),
           a AS (
             INSERT INTO approvals (release_id, environment_id, actor, role, decision,
               given_in, created_at)
             SELECT release_id, environment_id, 'alice', 'approver', 'approve', 'service',
                    created_at FROM p WHERE '{env}' = 'production'),
           d AS (
             INSERT INTO deployments (release_id, environment_id, promotion_id, state,
               record_id, actor, created_at, updated_at)
             SELECT release_id, environment_id, id, 'succeeded', 'rec-{env[0]}' || id, 'ci',
                    created_at, created_at FROM p
             RETURNING id, release_id, environment_id, promotion_id, record_id, created_at),
           v AS (
             INSERT INTO verifications (release_id, environment_id, passed, details, actor,
               created_at)
             SELECT release_id, environment_id, true, '{{}}', 'ci', created_at FROM d)
           INSERT INTO rollouts (release_id, environment_id, promotion_id, deployment_id,
             record_id, created_at, verified_at)
           SELECT release_id, environment_id, promotion_id, id, record_id, created_at,
                  created_at FROM d""")
    statements.append("""
        INSERT INTO audit_log (at, actor, role, action, subject_type, subject_id, after,
          request_id, source_ip, prev_hash, hash, project_id)
        SELECT to_char(now() - make_interval(secs => :audit - g), 'YYYY-MM-DD"T"HH24:MI:SS'),
               'ci:bench/app-' || g % :projects, 'ci',
               (ARRAY['image.registered', 'release.registered', 'promotion.requested',
                      'verification.recorded'])[1 + g % 4],
               (ARRAY['image', 'release', 'promotion', 'verification'])[1 + g % 4], g::text,
               json_build_object('id', g, 'state', 'requested'), lpad(to_hex(g), 32, '0'),
               '10.0.0.7', 'p' || md5('p' || g), 'h' || md5('h' || g), :first + g % :projects
        FROM generate_series(1, :audit) g""")
    return statements
