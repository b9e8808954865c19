# SPDX-License-Identifier: Apache-2.0
"""Issue 21: a one-application deployment upgrades to services with no change. A database at the
last migration before services (014) holds a live challenge, a user's wrong-code times and the
budgets' counters, as the previous release wrote them; otp-migrate applies the services
migrations; the verifier, started with the same settings as before (OTP_API_KEY_HASHES), verifies
the live code, and the old rows are now the default service's."""

import hashlib
import json
import os
import shutil
import subprocess
import urllib.request
import uuid

from stack import Stack, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def code_hash(key_hex, request_id, code):
    """otp_code_hash (common/otp_crypto.c): keyed BLAKE2b-256 of the context, the request id
    with its NUL, and the code. Written here independently of the product's code."""
    h = hashlib.blake2b(key=bytes.fromhex(key_hex), digest_size=32)
    h.update(b"otp-code-v1\0" + request_id.encode() + b"\0" + code.encode())
    return h.hexdigest()


def migrate(env, folder):
    out = subprocess.run([Stack.bin("otp-migrate"), folder], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_upgrade_keeps_live_requests_verifiable(tmp_path):
    with Stack() as s:
        db_url = s.start_postgres()
        key = os.urandom(32).hex()
        api_key = "otpk_" + os.urandom(16).hex()
        port = free_port()
        env = {**os.environ, "OTP_DATABASE_URL": db_url, "OTP_HASH_KEY": key,
               "OTP_WEBHOOK_SECRET": os.urandom(16).hex(), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
               "OTP_API_KEY_HASHES": hashlib.sha256(api_key.encode()).hexdigest(),
               "OTP_VERIFIER_LISTEN": "127.0.0.1:%d" % port, "OTP_VERIFIER_ADMIN_LISTEN": ""}
        old = tmp_path / "sql-014"
        old.mkdir()
        for f in sorted(os.listdir(os.path.join(ROOT, "sql"))):
            if f.endswith(".sql") and f[:3] <= "014":
                shutil.copy(os.path.join(ROOT, "sql", f), old / f)
        migrate(env, str(old))
        assert s.psql("SELECT to_regclass('services') IS NULL").strip() == "t"

        rid, code = str(uuid.uuid4()), "48291736"
        s.psql("INSERT INTO challenges (request_id, user_id, purpose, phone, phone_masked, country,"
               " locale, code_length, code_hash, key_id, status, max_attempts, max_call_attempts,"
               " requested_at, expires_at)"
               " VALUES ('%s', 'old-user', 'login', '+12025550199', '+12*******99', 'us', 'en-US',"
               " 8, decode('%s', 'hex'), 1, 'delivered', 5, 3, now(), now() + interval '5 min')"
               % (rid, code_hash(key, rid, code)))
        s.psql("INSERT INTO verify_user_failures (user_id, at) VALUES ('old-user', ARRAY[now()])")
        s.psql("INSERT INTO budget_counts (scope, key, bucket, n) VALUES"
               " ('u', 'old-user', date_trunc('minute', now()), 1),"
               " ('g', '', date_trunc('minute', now()), 1)")

        migrate(env, os.path.join(ROOT, "sql"))
        assert s.psql("SELECT name FROM services").strip() == "default"
        assert s.psql("SELECT service FROM challenges").strip() == "default"
        assert s.psql("SELECT service || '/' || user_id FROM verify_user_failures").strip() == \
            "default/old-user"
        assert sorted(s.psql("SELECT scope::text || '=' || key FROM budget_counts").split()) == \
            ["g=", "u=default:old-user"]

        v = s.spawn("verifier-upgraded", [Stack.bin("otp-verifier")], env=env,
                    ready_line=r"event=verifier_started")
        req = urllib.request.Request(
            "http://127.0.0.1:%d/v1/verify" % port, method="POST",
            data=json.dumps({"request_id": rid, "code": code}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + api_key})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as r:
            body = json.loads(r.read())
        assert (body["status"], body["service"], body["user_id"]) == \
            ("verified", "default", "old-user"), body
        # The wrong-code row kept its count: one failure in the last hour, still the user's.
        assert s.psql("SELECT cardinality(at) FROM verify_user_failures").strip() == "1"
        assert v.stop() == 0
