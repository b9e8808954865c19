# SPDX-License-Identifier: Apache-2.0
"""`make install`: PREFIX and DESTDIR, data under share/otp, systemd units that systemd-analyze
accepts, and installed programs that find their data from the install prefix (not from the
source tree). Installs into temporary folders only; no servers."""

import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ["otp-worker", "otp-verifier", "otp-produce", "otp-migrate", "otp-admin",
            "otp-hooks"]


def make_install(**variables):
    args = ["make", "--no-print-directory", "-C", ROOT, "install"]
    args += ["%s=%s" % kv for kv in variables.items()]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def prefix():
    d = tempfile.mkdtemp(prefix="otp-install-")
    make_install(PREFIX=os.path.join(d, "usr"))
    yield os.path.join(d, "usr")
    shutil.rmtree(d, ignore_errors=True)
    # Put the tree's binaries back on the default data folder.
    subprocess.run(["make", "--no-print-directory", "-C", ROOT, "build-all"], capture_output=True,
                   timeout=600)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    env.update(extra)
    return env


def test_layout(prefix):
    for p in PROGRAMS:
        assert os.access(os.path.join(prefix, "bin", p), os.X_OK), p
    share = os.path.join(prefix, "share", "otp")
    assert sorted(os.listdir(os.path.join(share, "locales"))) == \
        sorted(f for f in os.listdir(os.path.join(ROOT, "common", "locales")) if f.endswith(".json"))
    assert sorted(os.listdir(os.path.join(share, "sql"))) == \
        sorted(f for f in os.listdir(os.path.join(ROOT, "sql")) if f[0].isdigit() and f.endswith(".sql"))
    for f in ("otp.requested.schema.json", "otp.call_status.schema.json",
              "otp.requested.dlq.schema.json", "verifier.openapi.yaml"):
        assert os.path.isfile(os.path.join(share, "schema", f)), f
    assert os.path.isfile(os.path.join(share, "schema", "examples", "otp.requested.dlq.json"))


def test_systemd_units_are_valid(prefix):
    units = [os.path.join(prefix, "lib", "systemd", "system", u + ".service")
             for u in ("otp-worker", "otp-verifier", "otp-hooks")]
    for u in units:
        with open(u, encoding="utf-8") as f:
            text = f.read()
        assert "ExecStart=%s/bin/" % prefix in text and "@" not in text.replace("%d", ""), text
        assert "Restart=on-failure" in text and "DynamicUser=yes" in text
    r = subprocess.run(["systemd-analyze", "verify"] + units, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def test_installed_programs_find_their_data_in_the_prefix(prefix):
    # Run from elsewhere, with the binary copied out of both the tree and the install: only the
    # compiled-in PREFIX/share/otp can lead it to the voice templates.
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "bin"))
        exe = os.path.join(d, "bin", "otp-worker")
        shutil.copy(os.path.join(prefix, "bin", "otp-worker"), exe)
        r = subprocess.run([exe, "--preview", "de-DE", "123456"], capture_output=True, text=True,
                           cwd=d, env=clean_env(), timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("de-DE\tde-DE\t<speak>"), r.stdout
    # The installed migrate finds share/otp/sql: it gets as far as the (closed) database.
    r = subprocess.run([os.path.join(prefix, "bin", "otp-migrate")], capture_output=True,
                       text=True, cwd="/", timeout=30,
                       env=clean_env(OTP_DATABASE_URL="postgresql://otp@127.0.0.1:1/otp",
                                     OTP_STARTUP_TIMEOUT_SECONDS="0"))
    assert r.returncode != 0 and "OTP_DATABASE_URL" in r.stderr and "cannot open" not in r.stderr


def test_moved_install_still_finds_its_data(prefix):
    """A relocated tree (a package unpacked somewhere else) finds bin/../share/otp."""
    with tempfile.TemporaryDirectory() as d:
        moved = os.path.join(d, "opt", "otp")
        shutil.copytree(prefix, moved)
        shutil.rmtree(prefix + "-hidden", ignore_errors=True)
        os.rename(prefix, prefix + "-hidden")  # the compiled-in prefix is gone
        try:
            r = subprocess.run([os.path.join(moved, "bin", "otp-worker"), "--preview", "fr-FR",
                                "123456"], capture_output=True, text=True, cwd=d,
                               env=clean_env(), timeout=30)
        finally:
            os.rename(prefix + "-hidden", prefix)
        assert r.returncode == 0 and r.stdout.startswith("fr-FR\t"), r.stdout + r.stderr


def test_destdir_stages_under_the_prefix():
    with tempfile.TemporaryDirectory() as d:
        make_install(DESTDIR=d, PREFIX="/opt/otp")
        assert os.access(os.path.join(d, "opt/otp/bin/otp-worker"), os.X_OK)
        assert os.path.isdir(os.path.join(d, "opt/otp/share/otp/locales"))
        with open(os.path.join(d, "opt/otp/lib/systemd/system/otp-worker.service")) as f:
            assert "ExecStart=/opt/otp/bin/otp-worker\n" in f.read()
