"""Racing requests: 50 simultaneous promotion requests make exactly one promotion, no 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
import requests
from sqlalchemy import func, select

from promotion_service import db
from promotion_service.db.models import Outbox, Promotion, Verification
from tests.promotion_service.helpers import (
    RACE_SETTINGS,
    age,
    deploy,
    ref,
    register,
    registrations,
    verify,
)
from tests.support import free_port, wait_for_http

RACERS = 50


def ready_for_staging(api, app):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    age(app, Verification, timedelta(minutes=11))  # soaked, but no worker ran yet


def counts(app):
    with db.session_for(app, write=False) as session:
        return (session.scalar(select(func.count()).select_from(Promotion)),
                session.scalar(select(func.count()).select_from(Outbox)))


@pytest.mark.parametrize("app_settings", [RACE_SETTINGS], ids=["race"])
def test_threads_racing_to_promote_make_one_promotion(api, app, tokens):
    ready_for_staging(api, app)
    barrier = Barrier(RACERS)

    def request_promotion(_):
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/v1/promotions", json=ref(1, "staging"),
                           headers={"Authorization": f"Bearer {tokens['rm']}"})
        return resp.status_code, resp.json["id"]

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(request_promotion, range(RACERS)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (RACERS - 1) + [201]
    assert len({pid for _, pid in results}) == 1
    assert counts(app) == (1, 1)


def test_service_processes_racing_to_promote_make_one_promotion(api, app, tokens,
                                                                  database_url, tmp_path):
    """Two `serve` processes (two instances on one database), 25 requests each at once."""
    ready_for_staging(api, app)
    env = dict(os.environ, PROMOTION_DATABASE_URL=database_url,
               PROMOTION_POLICY_FILE=app.config["POLICY_FILE"])
    ports = [free_port(), free_port()]
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        servers = [subprocess.Popen(
            [sys.executable, "-m", "promotion_service", "serve", "--bind", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=out) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        try:
            for base in bases:
                wait_for_http(f"{base}/ready", timeout=30, ok=(200,))
        except RuntimeError as e:
            raise AssertionError(f"{e}\n{log.read_text(errors='replace')[-2000:]}") from None
        barrier = Barrier(RACERS)

        def request_promotion(n):
            barrier.wait()
            resp = requests.post(f"{bases[n % 2]}/api/v1/promotions", json=ref(1, "staging"),
                                 headers={"Authorization": f"Bearer {tokens['rm']}"}, timeout=60)
            return resp.status_code, resp.json()["id"]

        with ThreadPoolExecutor(RACERS) as pool:
            results = list(pool.map(request_promotion, range(RACERS)))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    assert sorted(s for s, _ in results) == [200] * (RACERS - 1) + [201]
    assert len({pid for _, pid in results}) == 1
    assert counts(app) == (1, 1)


@pytest.mark.parametrize("app_settings", [RACE_SETTINGS], ids=["race"])
def test_threads_registering_the_same_digest_make_one_image_and_one_release(api, app, tokens):
    barrier = Barrier(RACERS)

    def register(_):
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/v1/images", json=ref(7) | {"project": "group/app"},
                           headers={"Authorization": f"Bearer {tokens['ci-bot']}"})
        return resp.status_code, resp.json.get("id"), resp.json.get("release_id")

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(register, range(RACERS)))
    assert sorted(s for s, _, _ in results) == [200] * (RACERS - 1) + [201], results
    [(image_id, release_id)] = {(image, release) for _, image, release in results}
    assert registrations(api) == [("image.registered", str(image_id)),
                                  ("release.registered", str(release_id))]
