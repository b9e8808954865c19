# SPDX-License-Identifier: Apache-2.0
"""Issue 24: deploy/kubernetes/ (kustomize base and overlays/production), rendered with
`kubectl kustomize` and checked without a cluster: every environment name is a setting the
programs know (`otp-worker --settings-markdown`), a `*_FILE` of a secret one, or a librdkafka
property; every probe is on the container's admin listener; every mounted secret file is read
(a `*_FILE` setting, librdkafka's CA location, or the shell that reads the Kafka password) and
every `*_FILE` names a mounted file; the Services match the listeners; the NetworkPolicies open
only the webhook listener to all; requests cover the measured memory (README)."""

import gzip
import os
import re
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBE = os.path.join(ROOT, "deploy", "kubernetes")
# Added to the verifier by another branch; allowed before it reaches this tree.
PENDING_SETTINGS = {"OTP_WEBHOOK_LISTEN"}
# Read by libpq through the database_url secret (sslrootcert=...), not by a setting of its own.
READ_THROUGH_DATABASE_URL = {"/run/secrets/postgres-ca/ca.crt"}


def render(path):
    r = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert docs
    return docs


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def docs(request):
    return render(os.path.join(KUBE, request.param))


@pytest.fixture(scope="module")
def production():
    return render(os.path.join(KUBE, "overlays", "production"))


@pytest.fixture(scope="module")
def settings():
    """{name: is_secret} from the table the programs print."""
    out = subprocess.run([os.path.join(ROOT, "bin", "otp-worker"), "--settings-markdown"],
                         capture_output=True, text=True, check=True).stdout
    names = re.findall(r"^\| `([A-Z0-9_]+)` \|", out, re.M)
    assert "OTP_DATABASE_URL" in names and len(names) > 40, names
    with open(os.path.join(ROOT, "common", "otp_config.c"), encoding="utf-8") as f:
        secret = set(re.findall(r'\{"([A-Z0-9_]+)", OTP_CFG_SECRET,', f.read()))
    assert "OTP_HASH_KEY" in secret
    table = {n: n in secret for n in names}
    for n in PENDING_SETTINGS:
        table.setdefault(n, False)
    return table


@pytest.fixture(scope="module")
def kafka_properties():
    with gzip.open("/usr/share/doc/librdkafka-dev/CONFIGURATION.md.gz", "rt") as f:
        return set(re.findall(r"^([a-z][a-z0-9_.]+)\s+\|", f.read(), re.M))


def kinds(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs):
    out = {}
    for kind in ("StatefulSet", "Deployment", "Job"):
        for name, d in kinds(docs, kind).items():
            out[name] = d
    return out


def container_env(docs, c):
    """{name: value or None} of a container: env, then every ConfigMap it takes whole."""
    maps = kinds(docs, "ConfigMap")
    env = {}
    for src in c.get("envFrom") or []:
        ref = src["configMapRef"]["name"]
        assert ref in maps, "envFrom names a ConfigMap that is not rendered: %s" % ref
        env.update(maps[ref]["data"])
    for e in c.get("env") or []:
        env[e["name"]] = e.get("value")
    return env


def listen_port(value):
    return int(value.rsplit(":", 1)[1])


def test_every_environment_name_is_a_setting(docs, settings, kafka_properties):
    checked = 0
    for name, w in workloads(docs).items():
        for c in w["spec"]["template"]["spec"]["containers"]:
            for var in container_env(docs, c):
                checked += 1
                if var.endswith("_FILE"):
                    assert settings.get(var[:-5]) is True, \
                        "%s: %s is not a secret setting that takes a file" % (name, var)
                elif var.startswith("KAFKA_") and var not in settings:
                    prop = var[6:].lower().replace("_", ".")
                    assert prop in kafka_properties, "%s: %s is no librdkafka property" % (name, var)
                else:
                    assert var in settings, "%s: %s is not a setting" % (name, var)
                    assert not settings[var] or var == "OTP_API_KEY_HASHES", \
                        "%s: secret %s as plain environment (use %s_FILE)" % (name, var, var)
    assert checked >= 20


def test_probes_are_on_the_admin_listeners(docs):
    admin = {"otp-worker": "OTP_WORKER_LISTEN", "otp-verifier": "OTP_VERIFIER_ADMIN_LISTEN"}
    for name, setting in admin.items():
        w = workloads(docs)[name]
        [c] = w["spec"]["template"]["spec"]["containers"]
        env = container_env(docs, c)
        port = listen_port(env[setting])
        assert env[setting].startswith("0.0.0.0:"), "%s: the kubelet must reach %s" % (name, setting)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        probes = [c[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in c]
        assert "livenessProbe" in c and "readinessProbe" in c
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in probes:
            target = probe["httpGet"]["port"]
            assert ports.get(target, target) == port, "%s probes %s, not %s" % (name, target, port)
            assert probe["httpGet"]["path"] in ("/healthz", "/readyz")


def test_every_secret_file_is_read_and_every_file_setting_is_mounted(docs):
    checked = 0
    for name, w in workloads(docs).items():
        spec = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for c in spec["containers"]:
            env = container_env(docs, c)
            command = " ".join(c.get("command") or [])
            files = set()
            for m in c.get("volumeMounts") or []:
                secret = volumes[m["name"]].get("secret")
                assert secret, "%s: only secrets are mounted (%s)" % (name, m["name"])
                assert m.get("readOnly") is True
                assert secret.get("items"), "%s: name the files of %s" % (name, m["name"])
                for item in secret["items"]:
                    files.add(m["mountPath"].rstrip("/") + "/" + item["path"])
            values = {v for v in env.values() if v}
            for f in files:
                checked += 1
                assert f in values or f in command or f in READ_THROUGH_DATABASE_URL, \
                    "%s: %s is mounted but nothing reads it" % (name, f)
            for var, value in env.items():
                if var.endswith("_FILE"):
                    assert value in files, "%s: %s=%s is not a mounted file" % (name, var, value)
    assert checked >= 7


def test_workers_are_a_statefulset_with_stable_ids_and_the_verifier_a_deployment(docs):
    w = kinds(docs, "StatefulSet")["otp-worker"]
    [c] = w["spec"]["template"]["spec"]["containers"]
    [wid] = [e for e in c["env"] if e["name"] == "OTP_WORKER_ID"]
    assert wid["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert w["spec"]["serviceName"] in kinds(docs, "Service")
    assert 1 <= w["spec"]["replicas"] <= 12  # one otp.requested partition each at most
    assert "otp-verifier" in kinds(docs, "Deployment")
    job = kinds(docs, "Job")["otp-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["otp-migrate"]
    for d in workloads(docs).values():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
    pdbs = kinds(docs, "PodDisruptionBudget")
    selected = {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for p in pdbs.values()}
    assert selected == {"otp-worker", "otp-verifier"}


def test_api_and_webhook_are_separate_services_on_their_listeners(docs):
    v = kinds(docs, "Deployment")["otp-verifier"]
    [c] = v["spec"]["template"]["spec"]["containers"]
    env = container_env(docs, c)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    services = kinds(docs, "Service")
    by_listener = {"OTP_VERIFIER_LISTEN": "otp-verifier", "OTP_WEBHOOK_LISTEN": "otp-verifier-webhook"}
    for setting, svc in by_listener.items():
        [p] = services[svc]["spec"]["ports"]
        assert ports[p["targetPort"]] == listen_port(env[setting]), (svc, setting)
    assert listen_port(env["OTP_WEBHOOK_LISTEN"]) == 8081
    assert listen_port(env["OTP_VERIFIER_LISTEN"]) != listen_port(env["OTP_WEBHOOK_LISTEN"])


def test_only_the_webhook_listener_is_open_to_all(docs):
    policies = kinds(docs, "NetworkPolicy")
    # A policy that selects every pod of the product with no ingress rule: deny by default.
    deny = [p for p in policies.values() if p["spec"]["podSelector"]["matchLabels"] ==
            {"app.kubernetes.io/part-of": "voice-otp"} and not p["spec"].get("ingress")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"]
    for name, wl in workloads(docs).items():
        labels = wl["spec"]["template"]["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/part-of") == "voice-otp", name
    open_ports = []
    for p in policies.values():
        for rule in p["spec"].get("ingress") or []:
            if not rule.get("from"):
                open_ports += [(p["spec"]["podSelector"]["matchLabels"], q["port"])
                               for q in rule["ports"]]
            else:
                for peer in rule["from"]:
                    assert "ipBlock" not in peer, "%s opens to addresses" % p["metadata"]["name"]
    assert open_ports == [({"app.kubernetes.io/name": "otp-verifier"}, 8081)], open_ports


def test_memory_requests_cover_the_measured_figures(docs):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    measured = {
        "otp-worker": float(re.search(r"\| worker RSS with [\d,]+ calls in flight \| ([\d.]+) MiB",
                                      readme).group(1)),
        "otp-verifier": float(re.search(r"\| verifier peak RSS \| ([\d.]+) MiB", readme).group(1)),
    }

    def mib(q):
        m = re.fullmatch(r"(\d+)(Mi|Gi)", q)
        return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)

    for name, rss in measured.items():
        [c] = workloads(docs)[name]["spec"]["template"]["spec"]["containers"]
        req, lim = mib(c["resources"]["requests"]["memory"]), mib(c["resources"]["limits"]["memory"])
        assert rss <= req < lim, "%s: request %d MiB, limit %d MiB, measured %.1f" % (
            name, req, lim, rss)


def test_production_uses_the_clusters_kafka_over_tls_and_verify_full(production):
    for d in production:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "voice-otp", d["metadata"]["name"]
    settings = kinds(production, "ConfigMap")["voice-otp-settings"]["data"]
    assert settings["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == "voice-otp-kafka-bootstrap:9093"
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t["spec"]
              for t in kinds(production, "KafkaTopic").values()}
    assert set(topics) == {"otp.requested", "otp.call_status", "otp.requested.dlq"}
    for spec in topics.values():
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2
    assert kinds(production, "KafkaUser")["otp"]["spec"]["authentication"]["type"] == "scram-sha-512"
    for name, w in workloads(production).items():
        mounts = {m["mountPath"] for m in w["spec"]["template"]["spec"]["containers"][0]
                  ["volumeMounts"]}
        assert "/run/secrets/postgres-ca" in mounts, name
    image = {c["image"] for w in workloads(production).values()
             for c in w["spec"]["template"]["spec"]["containers"]}
    assert len(image) == 1 and re.fullmatch(r"voice-otp:\d+\.\d+\.\d+", image.pop())
