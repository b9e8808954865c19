# SPDX-License-Identifier: Apache-2.0
"""docker-compose.yml and its Prometheus and Grafana files, checked without a Docker engine:
`docker-compose config` (Debian's docker-compose), `promtool check config|rules`, every
environment name of our services against the settings table (and KAFKA_* against librdkafka's
properties), secrets as files, topics created before workers start, healthchecks through the
programs, scaled workers with their own ids, Prometheus discovery matching the listen settings,
the host Kafka listener the README shows, and every metric the dashboard and the alerts use
existing in common/otp_metrics.h. The production override (docker-compose.production.yml, with
scripts/compose-certs.sh) is checked the same way, plus its brokers, replication and TLS."""

import gzip
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
PRODUCTION = os.path.join(ROOT, "docker-compose.production.yml")
DEPLOY = os.path.join(ROOT, "deploy")
OUR_IMAGE = "voice-otp:"


def settings_table():
    """{name: type} from the settings table in common/otp_config.c."""
    with open(os.path.join(ROOT, "common", "otp_config.c"), encoding="utf-8") as f:
        src = f.read()
    rows = dict(re.findall(r'\{"([A-Z0-9_]+)", (OTP_CFG_[A-Z]+),', src))
    assert "OTP_DATABASE_URL" in rows and len(rows) > 40, rows
    return rows


def librdkafka_properties():
    """Every property name librdkafka 2.0 documents (CONFIGURATION.md of librdkafka-dev)."""
    with gzip.open("/usr/share/doc/librdkafka-dev/CONFIGURATION.md.gz", "rt") as f:
        names = set(re.findall(r"^([a-z][a-z0-9_.]+)\s+\|", f.read(), re.M))
    assert {"bootstrap.servers", "security.protocol", "sasl.username"} <= names, len(names)
    return names


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
    shutil.copy(PRODUCTION, d)
    shutil.copytree(DEPLOY, os.path.join(d, "deploy"))
    env = dict(os.environ, OTP_COMPOSE_DIR=d)
    r = subprocess.run([os.path.join(ROOT, "scripts", "compose-secrets.sh"), "--demo"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([os.path.join(ROOT, "scripts", "compose-certs.sh")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    yield d
    shutil.rmtree(d, ignore_errors=True)


def compose(project, *args, production=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTP_")}
    files = ["docker-compose.yml"] + (["docker-compose.production.yml"] if production else [])
    argv = ["docker-compose", "--project-directory", project]
    for f in files:
        argv += ["-f", os.path.join(project, f)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=env, cwd=project,
                          timeout=60)


@pytest.fixture(scope="module")
def config(project):
    r = compose(project, "--profile", "demo", "config")
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


@pytest.fixture(scope="module")
def production(project):
    r = compose(project, "config", production=True)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def ours(config):
    return {n: s for n, s in config["services"].items()
            if str(s.get("image", "")).startswith(OUR_IMAGE)}


def test_docker_compose_config_is_valid(project):
    r = compose(project, "config", "-q")
    assert r.returncode == 0, r.stderr
    plain = compose(project, "config", "--services").stdout.split()
    for s in ("postgres", "kafka", "topics-init", "migrate", "worker", "verifier",
              "prometheus", "grafana"):
        assert s in plain, s


def test_required_settings_fail_fast_without_env(project):
    os.rename(os.path.join(project, ".env"), os.path.join(project, "env.saved"))
    try:
        r = compose(project, "config", "-q")
    finally:
        os.rename(os.path.join(project, "env.saved"), os.path.join(project, ".env"))
    assert r.returncode != 0 and "OTP_CALLER_ID" in r.stderr


def check_environment_names(config):
    table = settings_table()
    kafka = librdkafka_properties()
    checked = 0
    for name, svc in ours(config).items():
        for var in svc.get("environment") or {}:
            checked += 1
            if var.endswith("_FILE"):
                base = var[:-len("_FILE")]
                assert table.get(base) == "OTP_CFG_SECRET", \
                    "%s: %s is not a secret setting that takes a file" % (name, var)
            elif var.startswith("KAFKA_") and var not in table:
                # Passed through to librdkafka: KAFKA_SASL_USERNAME is sasl.username.
                prop = var[len("KAFKA_"):].lower().replace("_", ".")
                assert prop in kafka, "%s: %s is no librdkafka property (%s)" % (name, var, prop)
            else:
                assert var in table, "%s: %s is not in the settings table" % (name, var)
    return checked


def test_every_environment_name_is_a_setting(config):
    assert check_environment_names(config) >= 20


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
    w = svcs["worker"]
    assert w["healthcheck"]["test"] == ["CMD", "otp-worker", "--healthcheck"]
    assert w["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
    assert w["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert w["environment"]["OTP_CALLBACK_URL"] is not None
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


def test_workers_scale_with_their_own_ids(config):
    """`--scale worker=N`: one service, no fixed name, port or id; each replica takes its
    container's host name as OTP_WORKER_ID (static membership across restarts)."""
    svcs = config["services"]
    assert not [n for n in svcs if re.fullmatch(r"worker-\d+", n)]
    w = svcs["worker"]
    assert "container_name" not in w and not w.get("ports") and "hostname" not in w
    assert "OTP_WORKER_ID" not in w["environment"]
    assert w["command"][:2] == ["sh", "-ec"]
    assert re.search(r"OTP_WORKER_ID=\$\$?\(hostname\) exec otp-worker$", w["command"][2])


def test_prometheus_discovers_the_admin_listeners(config):
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml"), encoding="utf-8") as f:
        prom = yaml.safe_load(f)
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    svcs = config["services"]

    def discovered(job):
        [sd] = jobs[job]["dns_sd_configs"]
        assert "static_configs" not in jobs[job], job
        return sd["names"], str(sd["port"])

    port = svcs["worker"]["environment"]["OTP_WORKER_LISTEN"].rsplit(":", 1)[1]
    assert discovered("otp-worker") == (["worker"], port)
    port = svcs["verifier"]["environment"]["OTP_VERIFIER_ADMIN_LISTEN"].rsplit(":", 1)[1]
    assert discovered("otp-verifier") == (["verifier"], port)
    # The admin port is not the published API port.
    assert int(port) not in {t for _, _, t in ports(svcs["verifier"])}
    # Prometheus is on 9090, not on Kafka's well-known 9092.
    assert [(p, t) for _, p, t in ports(svcs["prometheus"])] == [(9090, 9090)]
    assert not [n for n, svc in svcs.items() if 9092 in {p for _, p, _ in ports(svc)}]


def ports(svc):
    """[(host_ip or None, published, target)] of a service, from either form config prints."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip"), int(p["published"]), int(p["target"])))
        else:
            parts = p.split("/")[0].split(":")
            host = parts[0] if len(parts) == 3 else None
            out.append((host, int(parts[-2]), int(parts[-1])))
    return out


def listeners(env):
    """{listener name: (host, port)} of a KAFKA_*LISTENERS value."""
    out = {}
    for item in env.split(","):
        name, rest = item.split("://")
        host, port = rest.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def test_host_kafka_client_of_the_readme_reaches_the_external_listener(config):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    shown = re.findall(r"KAFKA_BOOTSTRAP_SERVERS=(localhost:\d+)", readme)
    assert shown and set(shown) == {"localhost:9094"}, shown
    host, port = shown[0].split(":")
    k = config["services"]["kafka"]
    env = k["environment"]
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    bound = listeners(env["KAFKA_LISTENERS"])
    assert advertised["EXTERNAL"] == (host, int(port))
    assert bound["EXTERNAL"][1] == int(port)
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["EXTERNAL"] == "PLAINTEXT"
    # Published on the host's loopback only: a plaintext broker is not for the network.
    assert ("127.0.0.1", int(port), int(port)) in ports(k), ports(k)
    # The services inside the network keep their own listener.
    assert advertised["PLAINTEXT"] == ("kafka", 9092)


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


def test_production_override_three_brokers_replicated_over_sasl_ssl(production, project):
    svcs = production["services"]
    brokers = {n: s for n, s in svcs.items() if s.get("image", "").startswith("apache/kafka")
               and n != "topics-init"}
    assert sorted(brokers) == ["kafka", "kafka-2", "kafka-3"]
    voters = None
    for name, b in brokers.items():
        env = b["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        voters = voters or env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert "%s@%s:9093" % (env["KAFKA_NODE_ID"], name) in voters.split(",")
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        # Every listener a client reaches is SASL_SSL; the controllers' is TLS.
        assert {protocols[n] for n in advertised} == {"SASL_SSL"}, protocols
        assert protocols[env["KAFKA_CONTROLLER_LISTENER_NAMES"]] == "SSL"
        assert advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == (name, 9092)
        host, port = advertised["EXTERNAL"]
        assert host == "localhost" and ("127.0.0.1", port, port) in ports(b), ports(b)
        # The files the image reads from /etc/kafka/secrets exist (scripts/compose-certs.sh).
        secrets_dir = os.path.join(project, "secrets", "kafka")
        for f in (env["KAFKA_SSL_KEYSTORE_FILENAME"], env["KAFKA_SSL_KEYSTORE_CREDENTIALS"],
                  "kafka_server_jaas.conf", "ca.crt", "admin.properties"):
            assert os.path.isfile(os.path.join(secrets_dir, f)), f
        assert "kafka_server_jaas.conf" in env["KAFKA_OPTS"]
    assert len(set(voters.split(","))) == 3
    init = svcs["topics-init"]["environment"]
    assert init["REPLICATION"] == "3" and init["CLI_CONFIG"].endswith("admin.properties")
    assert set(svcs["topics-init"]["depends_on"]) == set(brokers)


def test_production_clients_use_sasl_ssl_and_verify_full(production, project):
    svcs = production["services"]
    assert check_environment_names(production) >= 20
    for name in ("worker", "verifier"):
        env = svcs[name]["environment"]
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert len(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == 3
        mounted = {s["source"] for s in svcs[name]["secrets"]}
        assert {"tls_ca", "kafka_client_password"} <= mounted
        assert env["KAFKA_SSL_CA_LOCATION"] == "/run/secrets/tls_ca"
        # The password comes from its file in the container's shell, never from this file.
        assert "KAFKA_SASL_PASSWORD" not in env
        assert "$(cat /run/secrets/kafka_client_password)" in svcs[name]["command"][2].replace(
            "$$", "$")
    assert "OTP_WORKER_ID=$(hostname)" in svcs["worker"]["command"][2].replace("$$", "$")
    with open(production["secrets"]["database_url"]["file"]) as f:
        url = f.read().strip()
    assert "@postgres:5432/" in url and "sslmode=verify-full" in url
    assert "sslrootcert=/run/secrets/tls_ca" in url
    assert "tls_ca" in {s["source"] for s in svcs["migrate"]["secrets"]}
    # PostgreSQL answers TLS only, with a certificate for the name the programs use.
    pg = svcs["postgres"]
    assert "ssl=on" in pg["command"][0] and "hba_file=" in pg["command"][0]
    with open(os.path.join(DEPLOY, "compose", "pg_hba.conf")) as f:
        rules = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    assert ["hostssl", "all", "all", "all", "scram-sha-256"] in rules
    assert ["host", "all", "all", "all", "reject"] in rules
    assert not [r for r in rules if r[0] == "host" and r[-1] != "reject"]
    tls = os.path.join(project, "secrets", "tls")
    r = subprocess.run(["openssl", "x509", "-in", os.path.join(tls, "postgres.crt"), "-noout",
                        "-ext", "subjectAltName"], capture_output=True, text=True, timeout=30)
    assert "DNS:postgres" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(tls, "ca.crt"),
                        os.path.join(tls, "postgres.crt"), os.path.join(tls, "kafka-3.crt")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
