# SPDX-License-Identifier: Apache-2.0
"""Issue 24: `make dist` makes a source tarball of the last commit that builds from itself and
reports its version: VERSION in the tarball (no .git there) is what scripts/version.sh --commit
says here, `make lint` passes in it, and the five programs built from it say that version.
The whole `make test` is not run inside it (that is this tree's own `make test`)."""

import glob
import os
import subprocess
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ["otp-worker", "otp-verifier", "otp-produce", "otp-migrate", "otp-admin"]


def run(argv, cwd, timeout=600):
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")})
    assert r.returncode == 0, "%s in %s:\n%s%s" % (" ".join(argv), cwd, r.stdout[-3000:],
                                                   r.stderr[-3000:])
    return r.stdout


def test_dist_tarball_builds_from_itself_with_its_version():
    version = run([os.path.join(ROOT, "scripts", "version.sh"), "--commit"], ROOT).strip()
    out = run(["make", "--no-print-directory", "dist"], ROOT)
    path = os.path.join(ROOT, "build", "dist", "voice-otp-%s.tar.gz" % version)
    assert os.path.isfile(path), out
    with tempfile.TemporaryDirectory(prefix="otp-dist-") as d:
        with tarfile.open(path) as t:
            names = t.getnames()
            assert all(n == "voice-otp-" + version or n.startswith("voice-otp-%s/" % version)
                       for n in names), "one top folder"
            t.extractall(d)
        src = os.path.join(d, "voice-otp-" + version)
        assert not os.path.exists(os.path.join(src, ".git"))
        for f in ("LICENSE", "NOTICE", "CHANGELOG.md", "README.md", "Dockerfile", "VERSION"):
            assert os.path.isfile(os.path.join(src, f)), f
        with open(os.path.join(src, "VERSION")) as f:
            assert f.read().strip() == version
        assert run([os.path.join(src, "scripts", "version.sh")], src).strip() == version
        run(["make", "--no-print-directory", "lint"], src)
        run(["make", "--no-print-directory", "-j2"] + ["bin/" + p for p in PROGRAMS], src, 900)
        for p in PROGRAMS:
            assert run([os.path.join(src, "bin", p), "--version"], src).strip() == \
                "%s %s" % (p, version)
        assert not glob.glob(os.path.join(src, "bin", "unit", "*"))
