"""Sessions and the app's database wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.promotion_service.helpers import PROJECT, ref, register

REGISTER_IN_A_NEW_PROCESS = """
import json, sys
from promotion_service import create_app
app = create_app({"DATABASE_URL": sys.argv[1], "POLICY_FILE": sys.argv[2], "TESTING": True})
resp = app.test_client().post("/api/v1/images", json=json.loads(sys.argv[3]),
                              headers={"Authorization": "Bearer " + sys.argv[4]})
print(json.dumps({"status": resp.status_code, "body": resp.json}))
"""


def test_a_new_process_registers_an_image_before_any_other_query(api, tokens, database_url,
                                                                 policy_file):
    register(api, 1)  # the project exists: registration takes its Core path, no ORM query
    body = ref(2) | {"project": PROJECT}
    out = subprocess.run(
        [sys.executable, "-c", REGISTER_IN_A_NEW_PROCESS, database_url, policy_file,
         json.dumps(body), tokens["ci-bot"]],
        capture_output=True, text=True, timeout=120, check=True,
        cwd=Path(__file__).resolve().parents[3])
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["status"] == 201, answer
    assert (answer["body"]["digest"], answer["body"]["project_id"]) == (body["digest"], 1)
