# SPDX-License-Identifier: Apache-2.0
"""Every program's command line: --version, --help naming every flag the program takes, unknown
flags refused with the usage on stderr and exit status 2; OTP_LOG_FORMAT=json turns every log
line into one JSON object, librdkafka's own lines included. No servers."""

import json
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = {
    "otp-worker": "worker/main.c",
    "otp-verifier": "verifier/main.c",
    "otp-produce": "producer/main.c",
    "otp-migrate": "sql/migrate.c",
    "otp-admin": "admin/main.c",
    "otp-hooks": "hooks/main.c",
}


def run(prog, *args, env=None, timeout=30):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    base.update(env or {})
    return subprocess.run([os.path.join(ROOT, "bin", prog)] + list(args), capture_output=True,
                          text=True, env=base, timeout=timeout)


def flags_in_source(src_path):
    """The long flags a program's main.c recognises: strcmp(argv[...], "--x"), getopt_long's
    option table {"x", ...}, and those of otp_config_common_flags (common/otp_config.c) when
    main.c answers through it."""
    with open(os.path.join(ROOT, src_path), encoding="utf-8") as f:
        src = f.read()
    flags = set(re.findall(r'strcmp\(argv\[\d\], "(--[a-z-]+)"\)', src))
    if "otp_config_common_flags(" in src:
        with open(os.path.join(ROOT, "common", "otp_config.c"), encoding="utf-8") as f:
            common = f.read()
        body = common[common.index("int otp_config_common_flags("):]
        body = body[:body.index("\n}\n")]
        flags |= set(re.findall(r'strcmp\(argv\[1\], "(--[a-z-]+)"\)', body))
    table = re.search(r"struct option opts\[\]\s*=\s*\{(.*?)\{0, 0, 0, 0\}", src, re.S)
    if table:
        flags |= {"--" + n for n in re.findall(r'\{"([a-z-]+)",', table.group(1))}
    return flags


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_version(prog):
    r = run(prog, "--version")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"%s \d+\.\d+\.\d+\S*\n" % prog, r.stdout), r.stdout


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_help_names_every_flag(prog):
    flags = flags_in_source(PROGRAMS[prog])
    assert {"--help", "--version"} <= flags, flags
    r = run(prog, "--help")
    assert r.returncode == 0, r.stderr
    missing = [f for f in sorted(flags) if f not in r.stdout]
    assert not missing, "%s --help does not mention %s" % (prog, missing)


def test_worker_help_names_keygen_and_healthcheck():
    out = run("otp-worker", "--help").stdout
    assert "--keygen" in out and "--healthcheck" in out and "--preview" in out


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
@pytest.mark.parametrize("args", [["--bogus"], ["--version", "extra"], ["-x"]])
def test_unknown_flags_print_usage_and_exit_2(prog, args):
    r = run(prog, *args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert "usage:" in r.stderr


def test_bad_log_format_is_refused():
    r = run("otp-produce", "--phone", "+14155552671", "--user", "u", "--dry-run",
            env={"OTP_LOG_FORMAT": "xml"})
    assert r.returncode == 2 and "OTP_LOG_FORMAT" in r.stderr


def test_librdkafka_lines_go_through_the_json_logger():
    """A producer pointed at a closed port: librdkafka complains, and each of its lines is one of
    ours (event=kafka_log), never a raw '%3|...|FAIL|' line."""
    r = run("otp-produce", "--phone", "+14155552671", "--user", "u",
            env={"OTP_LOG_FORMAT": "json", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                 "KAFKA_MESSAGE_TIMEOUT_MS": "1500"})
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.startswith("{")]
    assert not re.search(r"^%\d\|", r.stderr, re.M), r.stderr
    kafka = [json.loads(l) for l in lines if '"kafka_log"' in l]
    assert kafka, r.stderr
    for ev in kafka:
        assert ev["prog"] == "otp-produce" and ev["level"] in ("error", "warn", "info")
        assert ev["facility"] and ev["message"]
