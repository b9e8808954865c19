# SPDX-License-Identifier: Apache-2.0
"""Issue 10: OTP_BRAND and OTP_DEFAULT_LOCALE are checked when otp-worker starts.

The worker is started with every other setting valid and a database that cannot be reached (a
closed port on 127.0.0.1): a bad brand or locale stops it with an error naming the setting, before
any connection; a good one gets as far as the database.
"""

import os
import socket
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "bin", "otp-worker")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(**env):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OTP_CALLER_ID": "+15550100000",
            "OTP_HASH_KEY": "5f" * 32,
            "OTP_VOIPBIN_ACCESS_KEY": "vb_test_key_for_a_start_that_never_calls",
            "OTP_DATABASE_URL": "postgresql://127.0.0.1:%d/otp?connect_timeout=2" % closed_port(),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:%d" % closed_port(),
            # Try the database once: a good setting is seen to get that far.
            "OTP_STARTUP_TIMEOUT_SECONDS": "0"}
    base.update(env)
    return subprocess.run([WORKER], capture_output=True, text=True, env=base, timeout=30)


@pytest.mark.parametrize("brand, why", [
    ("", "blank"), ("   ", "blank"), ("Acme\nBank", "control"), ("Acme\x1b[31m", "control"),
    ("A" * 33, "longer than 32"), ("\u0085Acme", "control"),
])
def test_bad_brand_stops_the_worker(brand, why):
    out = start(OTP_BRAND=brand)
    assert out.returncode == 2, out
    assert "OTP_BRAND" in out.stderr and why in out.stderr, out.stderr
    assert "4-10 digits" not in out.stderr


def test_brand_not_utf8_stops_the_worker():
    env = {k.encode(): v.encode() for k, v in {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OTP_CALLER_ID": "+15550100000",
        "OTP_HASH_KEY": "5f" * 32, "OTP_VOIPBIN_ACCESS_KEY": "vb_test_key_for_a_start_that_never_calls",
        "OTP_DATABASE_URL": "postgresql://127.0.0.1:%d/otp" % closed_port(),
        "OTP_STARTUP_TIMEOUT_SECONDS": "0"}.items()}
    env[b"OTP_BRAND"] = b"Acme\xff"
    out = subprocess.run([WORKER], capture_output=True, env=env, timeout=30)
    assert out.returncode == 2 and b"OTP_BRAND: not valid UTF-8" in out.stderr, out.stderr


def test_preview_names_the_brand():
    out = subprocess.run([WORKER, "--preview", "en-US", "482913"], capture_output=True, text=True,
                         env={**os.environ, "OTP_BRAND": "x" * 40}, timeout=30)
    assert out.returncode == 2 and "OTP_BRAND" in out.stderr, out.stderr


@pytest.mark.parametrize("brand", ["Acme", "Société Générale", "株式会社アクメ", "A&B <Co>"])
def test_good_brand_gets_to_the_database(brand):
    out = start(OTP_BRAND=brand)
    assert out.returncode == 2
    assert "OTP_DATABASE_URL: cannot connect" in out.stderr, out.stderr


@pytest.mark.parametrize("default", ["fr", "en_GB", "EN-gb", "es-MX", "de-DE"])
def test_default_locale_resolves(default):
    out = start(OTP_DEFAULT_LOCALE=default)
    assert out.returncode == 2
    assert "OTP_DATABASE_URL: cannot connect" in out.stderr, out.stderr


@pytest.mark.parametrize("default", ["xx", "sv-SE", "-"])
def test_default_locale_without_template_stops_the_worker(default):
    out = start(OTP_DEFAULT_LOCALE=default)
    assert out.returncode == 2
    assert "OTP_DEFAULT_LOCALE=%s: no template" % default in out.stderr, out.stderr
