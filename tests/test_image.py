# SPDX-License-Identifier: Apache-2.0
"""Issue 24: the container image is built and its programs run, in `make test` (a fresh clone too).

scripts/build-image.sh (what `make image` runs) builds the Dockerfile: docker where an engine
answers, else buildah on a Debian 12 base made with mmdebstrap (kept under build/image/, so only
the first run in a work tree makes it). The size and the build time are printed (pytest -s) and
the size must stay under 150 MB. Then programs run from the image with
`buildah run --isolation chroot` (the host's network: loopback reaches the local stack) as the
image's user: `--version` of each, `otp-migrate` against the test PostgreSQL, and one request end
to end with otp-worker and otp-verifier from the image (PostgreSQL, the Kafka broker and the
VoIPBin simulator are the local ones; otp-produce publishes from the host). Secrets reach the
programs as files mounted at /run/secrets with the `*_FILE` settings, as compose does.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import pipeline as P
from stack import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One tag per work tree: two clones testing on one machine do not replace each other's image.
IMAGE = "voice-otp:test-" + hashlib.sha256(ROOT.encode()).hexdigest()[:10]
PROGRAMS = ["otp-worker", "otp-verifier", "otp-produce", "otp-migrate", "otp-admin",
            "otp-hooks"]
SECRETS = ["OTP_DATABASE_URL", "OTP_VOIPBIN_ACCESS_KEY", "OTP_HASH_KEY", "OTP_WEBHOOK_SECRET"]
IMAGE_UID = 10001
MAX_MB = 150


def _run(argv, timeout=120, check=True, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and out.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(argv), out.returncode,
                                                     out.stdout[-3000:], out.stderr[-3000:]))
    return out


def _megabytes(size):
    """buildah's "139 MB" / "1.2 GB" (decimal units, as docker prints them) in MB."""
    m = re.fullmatch(r"([\d.]+)\s*(kB|MB|GB)", size.strip())
    assert m, "cannot read the image size %r" % size
    return float(m.group(1)) * {"kB": 1e-3, "MB": 1, "GB": 1e3}[m.group(2)]


@pytest.fixture(scope="module")
def image():
    assert shutil.which("buildah"), "buildah missing: run scripts/install-deps.sh"
    version = _run([os.path.join(ROOT, "scripts", "version.sh")]).stdout.strip()
    t0 = time.monotonic()
    out = _run([os.path.join(ROOT, "scripts", "build-image.sh")], timeout=900,
               env={**os.environ, "IMAGE": IMAGE, "OTP_VERSION": version,
                    "OTP_IMAGE_ENGINE": "buildah"})
    took = time.monotonic() - t0
    size = _run(["buildah", "images", "--noheading", "--format", "{{.Size}}", IMAGE]).stdout
    print("\nimage %s: %s, build %.0f s (%s)" % (IMAGE, size.strip(), took, out.stdout.strip()))
    containers = []

    def container():
        name = "otp-test-%d-%d" % (os.getpid(), len(containers))
        _run(["buildah", "from", "--name", name, IMAGE])
        containers.append(name)
        return name

    yield {"version": version, "size": size.strip(), "container": container}
    for name in containers:
        subprocess.run(["buildah", "rm", name], capture_output=True, timeout=60)


class ImagePrograms:
    """Pipeline's `program`: runs a program from the image in a working container of its own,
    with secrets as files under /run/secrets and the other settings as -e NAME=value."""

    def __init__(self, image, secrets_dir):
        self.image = image
        self.secrets_dir = secrets_dir
        self.containers = {}

    def __call__(self, name, env):
        if name not in self.containers:
            self.containers[name] = self.image["container"]()
        argv = ["buildah", "run", "--isolation", "chroot",
                "-v", "%s:/run/secrets:ro" % self.secrets_dir]
        for key, value in sorted(env.items()):
            if key in SECRETS:
                path = os.path.join(self.secrets_dir, key.lower())
                with open(path, "w") as f:
                    f.write(value)
                os.chmod(path, 0o400)
                os.chown(path, IMAGE_UID, IMAGE_UID)
                argv += ["-e", "%s_FILE=/run/secrets/%s" % (key, key.lower())]
            else:
                argv += ["-e", "%s=%s" % (key, value)]
        return argv + [self.containers[name], "--", name], {}


def terminate_in_container(proc, name):
    """SIGTERM to the program itself, inside `buildah run` (which answers a SIGTERM of its own
    with SIGKILL to the program): the process of proc's group whose command is name."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry) as f:
                comm = f.read().strip()
            if comm == name and os.getpgid(int(entry)) == proc.pid:
                pids.append(int(entry))
        except (OSError, ProcessLookupError):
            continue
    assert len(pids) == 1, "%s in the process group of %d: %r" % (name, proc.pid, pids)
    os.kill(pids[0], signal.SIGTERM)


@pytest.fixture
def secrets_dir():
    d = tempfile.mkdtemp(prefix="otp-image-secrets-")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_image_is_slim_and_runs_as_a_user(image):
    assert _megabytes(image["size"]) < MAX_MB, "image is %s (limit %d MB)" % (image["size"], MAX_MB)
    ctr = image["container"]()
    run = ["buildah", "run", "--isolation", "chroot", ctr, "--"]
    assert _run(run + ["id", "-u"]).stdout.strip() == str(IMAGE_UID)
    # No compiler, no headers at run time.
    found = _run(run + ["sh", "-c", "command -v cc gcc g++ c++ make ld; ls /usr/include"],
                 check=False).stdout.split()
    assert found == [], "build tools in the runtime image: %r" % found
    # The libraries' licenses (NOTICE points at them) are in the image.
    for pkg in ("librdkafka1", "libphonenumber8", "libmicrohttpd12", "libpq5"):
        _run(run + ["test", "-s", "/usr/share/doc/%s/copyright" % pkg])


def test_each_program_reports_the_version(image):
    ctr = image["container"]()
    for prog in PROGRAMS:
        out = _run(["buildah", "run", "--isolation", "chroot", ctr, "--", prog, "--version"])
        assert out.stdout.strip() == "%s %s" % (prog, image["version"]), out.stdout
    # The simulator (compose's demo profile) has no --version; its usage proves it starts.
    out = _run(["buildah", "run", "--isolation", "chroot", ctr, "--", "voipbin-sim", "--help"])
    assert out.stdout.startswith("usage: voipbin-sim")


def test_migrate_from_the_image(image, secrets_dir):
    programs = ImagePrograms(image, secrets_dir)
    nfiles = len([f for f in os.listdir(os.path.join(ROOT, "sql")) if re.match(r"\d+_.*\.sql$", f)])
    with Stack() as s:
        url = s.start_postgres(fast=True)
        argv, env = programs("otp-migrate", {"OTP_DATABASE_URL": url, "OTP_LOG_LEVEL": "info"})
        assert "OTP_DATABASE_URL_FILE=/run/secrets/otp_database_url" in argv
        first = _run(argv, env={**os.environ, **env})
        assert "%d applied" % nfiles in first.stdout + first.stderr, first.stdout + first.stderr
        assert s.psql("SELECT count(*) FROM schema_migrations").strip() == str(nfiles)
        again = _run(argv, env={**os.environ, **env})
        assert re.search(r"0 applied, %d already current" % nfiles, again.stdout + again.stderr)


def test_one_request_end_to_end_from_the_image(image, secrets_dir):
    programs = ImagePrograms(image, secrets_dir)
    with Stack() as s:
        p = P.Pipeline(s, pg_fast=True, program=programs)
        try:
            verifier = p.start_verifier()
            worker = p.start_worker()
            assert verifier.argv[:2] == worker.argv[:2] == ["buildah", "run"]
            [rid] = p.produce([{"phone": "+12025550100", "user_id": "image-user"}])
            [call] = p.wait_calls(1, pred=lambda c: c["target"] == "+12025550100" and c["talks"])
            code = P.spoken_code(P.call_texts(call)[0])
            st, body = p.verify(rid, code)
            assert (st, body["status"], body["valid"]) == (200, "verified", True), body
            p.status.wait_for(lambda evs: "verified" in [e["type"] for e in evs
                                                         if e.get("request_id") == rid],
                              what="the verified event")
            assert P.types_of(p, rid)[:2] == ["accepted", "call_requested"]
            # SIGTERM (what an engine sends on stop) drains them and they exit 0.
            for proc, name, event in ((worker, "otp-worker", "worker_stopped"),
                                      (verifier, "otp-verifier", "verifier_stopping")):
                terminate_in_container(proc, name)
                assert proc.wait(timeout=30) == 0, proc.log()[-2000:]
                assert "event=%s" % event in proc.log(), proc.log()[-2000:]
        finally:
            p.close()
