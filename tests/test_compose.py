"""docker-compose.yml and its Prometheus and Grafana files, checked without a Docker engine:
`docker-compose config` (Debian's docker-compose), `promtool check config|rules`, every
environment name of our services against the settings table, secrets as files, topics created
before workers start, healthchecks through the programs, scrape targets matching the listen
settings, and every metric the dashboard and the alerts use existing in common/otp_metrics.h."""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
DEPLOY = os.path.join(ROOT, "deploy")
OUR_IMAGE = "voice-otp:"


def settings_table():
    """{name: type} from the settings table in common/otp_config.c."""
    with open(os.path.join(ROOT, "common", "otp_config.c"), encoding="utf-8") as f:
        src = f.read()
    rows = dict(re.findall(r'\{"([A-Z0-9_]+)", (OTP_CFG_[A-Z]+),', src))
    assert "OTP_DATABASE_URL" in rows and len(rows) > 40, rows
    return rows


def metric_names():
    with open(os.path.join(ROOT, "common", "otp_metrics.h"), encoding="utf-8") as f:
        names = set(re.findall(r'X\(\w+,\s*"(otp_[a-z_]+)"', f.read()))
    assert len(names) > 15, names
    return names


@pytest.fixture(scope="module")
def project():
    """A copy of the compose project with the secrets and .env of `compose-secrets.sh --demo`."""
    d = tempfile.mkdtemp(prefix="otp-compose-")
    shutil.copy(COMPOSE, d)
    shutil.copytree(DEPLOY, os.path.join(d, "deploy"))
    env = dict(os.environ, OTP_COMPOSE_DIR=d)
    r = subprocess.run([os.path.join(ROOT, "scripts", "compose-secrets.sh"), "--demo"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    yield d
    shutil.rmtree(d, ignore_errors=True)


def compose(project, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTP_")}
    return subprocess.run(["docker-compose", "--project-directory", project, "-f",
                           os.path.join(project, "docker-compose.yml")] + list(args),
                          capture_output=True, text=True, env=env, cwd=project, timeout=60)


@pytest.fixture(scope="module")
def config(project):
    r = compose(project, "--profile", "demo", "config")
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def ours(config):
    return {n: s for n, s in config["services"].items()
            if str(s.get("image", "")).startswith(OUR_IMAGE)}


def test_docker_compose_config_is_valid(project):
    r = compose(project, "config", "-q")
    assert r.returncode == 0, r.stderr
    plain = compose(project, "config", "--services").stdout.split()
    for s in ("postgres", "kafka", "topics-init", "migrate", "worker-1", "worker-2", "verifier",
              "prometheus", "grafana"):
        assert s in plain, s


def test_required_settings_fail_fast_without_env(project):
    os.rename(os.path.join(project, ".env"), os.path.join(project, "env.saved"))
    try:
        r = compose(project, "config", "-q")
    finally:
        os.rename(os.path.join(project, "env.saved"), os.path.join(project, ".env"))
    assert r.returncode != 0 and "OTP_CALLER_ID" in r.stderr


def test_every_environment_name_is_a_setting(config):
    table = settings_table()
    checked = 0
    for name, svc in ours(config).items():
        for var in svc.get("environment") or {}:
            checked += 1
            if var.endswith("_FILE"):
                base = var[:-len("_FILE")]
                assert table.get(base) == "OTP_CFG_SECRET", \
                    "%s: %s is not a secret setting that takes a file" % (name, var)
            else:
                assert var in table, "%s: %s is not in the settings table" % (name, var)
    assert checked >= 20


def test_secrets_come_from_files(config, project):
    table = settings_table()
    for name, svc in ours(config).items():
        env = svc.get("environment") or {}
        mounted = {s["source"] if isinstance(s, dict) else s for s in svc.get("secrets") or []}
        for var, value in env.items():
            if var.endswith("_FILE"):
                m = re.fullmatch(r"/run/secrets/([a-z_]+)", value)
                assert m and m.group(1) in mounted, (name, var, value)
            else:
                # No secret setting is passed as plain environment.
                assert table.get(var) != "OTP_CFG_SECRET", (name, var)
    for s, spec in config["secrets"].items():
        assert os.path.isfile(spec["file"]), "compose-secrets.sh did not write %s" % s
        assert os.stat(spec["file"]).st_mode & 0o077 == 0, spec["file"]


def test_restart_healthchecks_and_order(config):
    svcs = config["services"]
    for name, svc in svcs.items():
        if name in ("topics-init", "migrate"):
            assert svc["restart"] == "no"
        else:
            assert svc.get("restart") == "unless-stopped", name
    for name in ("worker-1", "worker-2"):
        w = svcs[name]
        assert w["healthcheck"]["test"] == ["CMD", "otp-worker", "--healthcheck"]
        assert w["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
        assert w["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert w["environment"]["OTP_CALLBACK_URL"] is not None
    assert svcs["worker-1"]["environment"]["OTP_WORKER_ID"] != \
        svcs["worker-2"]["environment"]["OTP_WORKER_ID"]
    assert svcs["verifier"]["healthcheck"]["test"] == ["CMD", "otp-verifier", "--healthcheck"]
    assert svcs["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svcs["topics-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert svcs["voipbin-sim"]["profiles"] == ["demo"]


def volume_at(config, svc, target):
    """1 if a named volume (not a host folder) is mounted at target."""
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            source, dest = parts[0], parts[1]
        else:
            source, dest = v.get("source"), v.get("target")
        if dest == target and source in config["volumes"]:
            return 1
    return 0


def test_kafka_kraft_pinned_with_volumes(config):
    svcs = config["services"]
    k = svcs["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", k["image"])
    assert k["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert k["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    log_dir = k["environment"]["KAFKA_LOG_DIRS"]
    assert volume_at(config, k, log_dir)
    assert volume_at(config, svcs["postgres"], "/var/lib/postgresql/data")
    for name, svc in svcs.items():
        image = svc.get("image", "")
        if not image.startswith(OUR_IMAGE):
            assert re.search(r":v?\d+\.\d+", image), "%s: image %s is not pinned" % (name, image)


def test_topics_init_creates_the_three_topics(config):
    script = " ".join(config["services"]["topics-init"]["command"])
    topics = dict((t, (int(p), int(r))) for t, p, r in
                  re.findall(r"^\s*topic (\S+) (\d+) (\d+)$", script, re.M))
    assert set(topics) == {"otp.requested", "otp.call_status", "otp.requested.dlq"}, script
    assert topics["otp.requested"][0] >= 2 and topics["otp.call_status"][0] >= 2
    # Requests outlive an outage of a day; codes live at most 10 minutes.
    assert topics["otp.requested"][1] >= 86400000


def test_prometheus_config_and_rules_pass_promtool():
    for args in (["check", "config", os.path.join(DEPLOY, "prometheus", "prometheus.yml")],
                 ["check", "rules", os.path.join(DEPLOY, "prometheus", "otp.rules.yml")]):
        r = subprocess.run(["promtool"] + args, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def test_scrape_targets_match_the_admin_listeners(config):
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml"), encoding="utf-8") as f:
        prom = yaml.safe_load(f)
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    svcs = config["services"]
    for name in ("worker-1", "worker-2"):
        port = svcs[name]["environment"]["OTP_WORKER_LISTEN"].rsplit(":", 1)[1]
        assert "%s:%s" % (name, port) in targets
    port = svcs["verifier"]["environment"]["OTP_VERIFIER_ADMIN_LISTEN"].rsplit(":", 1)[1]
    assert "verifier:%s" % port in targets
    # The admin port is not the published API port.
    published = {str(p["target"]) for p in svcs["verifier"].get("ports", [])}
    assert port not in published


def test_dashboard_and_alerts_use_existing_metrics():
    known = metric_names()
    exprs = []
    with open(os.path.join(DEPLOY, "grafana", "dashboards", "voice-otp.json"), encoding="utf-8") as f:
        dash = json.load(f)
    for panel in dash["panels"]:
        exprs += [t["expr"] for t in panel["targets"]]
    with open(os.path.join(DEPLOY, "prometheus", "otp.rules.yml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = set()
    for e in exprs:
        for m in re.findall(r"\b(otp_[a-z_]+)", e):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            assert base in known, "%s uses unknown metric %s" % (e, m)
            used.add(base)
    # The panels the issue asks for are there.
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("requests", "calls by outcome", "verify", "lag", "outbox", "429", "latency"):
        assert word in titles, word
    assert len(used) >= 10
    with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "otp.yml")) as f:
        prov = yaml.safe_load(f)
    assert prov["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_env_file_names_are_the_settings_names():
    """${NAME} values the operator gives in .env carry the settings' own OTP_* names."""
    with open(COMPOSE, encoding="utf-8") as f:
        text = f.read()
    table = settings_table()
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    # The image tag is compose's own, not a program setting.
    assert names - {"OTP_IMAGE_TAG"} <= set(table), names - set(table)
    assert {"OTP_CALLER_ID", "OTP_API_KEY_HASHES"} <= names
