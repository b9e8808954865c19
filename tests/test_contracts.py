# SPDX-License-Identifier: Apache-2.0
"""The contracts in schema/ hold: the OpenAPI document is valid OpenAPI (@redocly/cli), and the
otp.requested JSON Schema (Draft 2020-12) accepts exactly what the worker's parser accepts.

The parser is run through bin/tools/event-check (common/otp_event.c's otp_request_parse).
Debian's /usr/bin/python3 with python3-jsonschema; no servers.
"""

import glob
import json
import os
import re
import subprocess
import tempfile

import jsonschema
import pytest

from testkit import load_schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "schema")
EXAMPLES = os.path.join(SCHEMA_DIR, "examples")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus", "event")
EVENT_CHECK = os.path.join(ROOT, "bin", "tools", "event-check")
PRODUCE = os.path.join(ROOT, "bin", "otp-produce")
REDOCLY = os.path.join(ROOT, "tests", "tools", "node_modules", ".bin", "redocly")

# What JSON Schema cannot say, each also written in the schema's descriptions. Corpus files the
# parser rejects for one of these reasons may pass the schema.
PARSER_ONLY_CHECKS = {
    "bad-time-feb29.json": "the date must exist in the calendar",
    "edge-year-9999-offset.json": "requested_at, its offset applied, falls in the years 0001-9999",
    "bad-too-large.json": "a message is at most 8192 bytes",
    "bad-metadata-large.json": "metadata is at most 1024 bytes as compact JSON",
    "bad-user-long.json": "user_id length is counted in UTF-8 bytes",
    "bad-duplicate.json": "a field may appear once (JSON Schema sees the parsed object)",
}


def load_validator(topic):
    schema = load_schema(topic + ".schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


REQUESTED = load_validator("otp.requested")


def schema_errors(validator, doc):
    return [e.message for e in validator.iter_errors(doc)]


def parser_verdicts(messages):
    """['accept' | 'reject <reason>'] for each message (bytes or str), from the C parser."""
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, m in enumerate(messages):
            p = os.path.join(d, "%d.json" % i)
            with open(p, "wb") as f:
                f.write(m if isinstance(m, bytes) else m.encode("utf-8"))
            paths.append(p)
        out = subprocess.run([EVENT_CHECK] + paths, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == len(messages), out
    return lines


def schema_accepts(raw):
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return not schema_errors(REQUESTED, doc)


BASE = {"request_id": "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01", "user_id": "u-42",
        "phone": "+14155552671", "requested_at": "2026-01-15T09:30:00Z"}

# A valid value for each field the schema names; the keypad pair only makes sense together.
SAMPLES = {
    "schema_version": 1,
    "request_id": BASE["request_id"],
    "resend_of": "5d0f3c1e-8a7b-4e2d-9c6f-1b2a3c4d5e6f",
    "user_id": "u-7",
    "phone": "+4915112345678",
    "locale": "de-DE",
    "purpose": "password_reset",
    "requested_at": "2026-01-15T11:30:00.250+02:00",
    "ttl_seconds": 120,
    "code_length": 8,
    "delivery": {"gate": True},
    "keypad_code_sealed": "c2VhbGVk",
    "metadata": {"tenant": "t1"},
}
DELIVERY_SAMPLES = {"gate": True, "amd": False, "sms_fallback": True, "channel": "sms", "mode": "speak"}


def with_field(name, value):
    msg = dict(BASE)
    msg[name] = value
    if name == "keypad_code_sealed":
        msg["delivery"] = {"mode": "keypad"}
    return msg


def parser_field_names():
    """The top-level field names the parser knows, read from its table in common/otp_event.c."""
    with open(os.path.join(ROOT, "common", "otp_event.c"), encoding="utf-8") as f:
        src = f.read()
    table = re.search(r"known_fields\[\]\s*=\s*\{(.*?)\};", src, re.S)
    assert table, "known_fields[] not found in common/otp_event.c"
    names = re.findall(r'"([a-z_]+)"', table.group(1))
    assert "request_id" in names and len(names) >= 10, names
    return set(names)


def test_openapi_document_is_valid():
    assert os.path.exists(REDOCLY), "run `make test-tools` (npm ci in tests/tools)"
    r = subprocess.run([REDOCLY, "lint", "--format=stylish",
                        os.path.join(SCHEMA_DIR, "verifier.openapi.yaml")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stdout, r.stdout


def test_every_schema_is_a_valid_2020_12_schema():
    for path in glob.glob(os.path.join(SCHEMA_DIR, "*.schema.json")):
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_example_validates_against_its_topic_schema():
    topics = sorted((os.path.basename(p)[:-len(".schema.json")]
                     for p in glob.glob(os.path.join(SCHEMA_DIR, "*.schema.json"))),
                    key=len, reverse=True)
    examples = sorted(glob.glob(os.path.join(EXAMPLES, "*.json")))
    seen = set()
    for path in examples:
        name = os.path.basename(path)
        topic = next(t for t in topics if name == t + ".json" or name.startswith(t + "."))
        seen.add(topic)
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        assert schema_errors(load_validator(topic), doc) == [], name
        if topic == "otp.requested":
            assert parser_verdicts([json.dumps(doc)]) == ["accept"], name
    # Every topic, the DLQ included, has at least one example.
    assert seen == set(topics), set(topics) - seen


def test_parser_fields_and_schema_fields_are_the_same():
    schema_fields = set(REQUESTED.schema["properties"])
    assert parser_field_names() == schema_fields
    delivery = set(REQUESTED.schema["properties"]["delivery"]["properties"])
    assert delivery == set(DELIVERY_SAMPLES)


def test_each_field_is_accepted_by_both_and_unknown_fields_by_neither():
    msgs = [with_field(n, v) for n, v in sorted(SAMPLES.items())]
    msgs += [with_field("delivery", {k: v}) for k, v in sorted(DELIVERY_SAMPLES.items())]
    for msg, verdict in zip(msgs, parser_verdicts([json.dumps(m) for m in msgs])):
        assert verdict == "accept", msg
        assert schema_errors(REQUESTED, msg) == [], msg
    unknown = [with_field("colour", "red"), with_field("delivery", {"sms": True}),
               with_field("delivery", {"channel": "fax"}), with_field("delivery", {"mode": "sing"})]
    for msg, verdict in zip(unknown, parser_verdicts([json.dumps(m) for m in unknown])):
        assert verdict.startswith("reject"), msg
        assert schema_errors(REQUESTED, msg) != [], msg


def test_rules_across_fields_agree():
    """Resend without user and phone; keypad needs the sealed code and the voice channel."""
    resend = {"request_id": BASE["request_id"], "resend_of": SAMPLES["resend_of"],
              "requested_at": BASE["requested_at"]}
    cases = [
        resend,
        dict(resend, phone="+14155552671"),
        {k: v for k, v in BASE.items() if k != "phone"},
        {k: v for k, v in BASE.items() if k != "user_id"},
        dict(BASE, delivery={"mode": "keypad"}),
        dict(BASE, keypad_code_sealed="c2VhbGVk"),
        dict(BASE, keypad_code_sealed="c2VhbGVk", delivery={"mode": "keypad", "channel": "sms"}),
        dict(BASE, keypad_code_sealed="c2VhbGVk", delivery={"mode": "keypad", "channel": "voice"}),
        dict(BASE, keypad_code_sealed="", delivery={"mode": "keypad"}),
        dict(BASE, requested_at="2022-05-01 15:10:38.721000Z"),
        dict(BASE, requested_at="2026-01-15T09:30:00"),
        dict(BASE, locale=None, metadata=None),
    ]
    verdicts = parser_verdicts([json.dumps(c) for c in cases])
    for case, verdict in zip(cases, verdicts):
        assert (verdict == "accept") == (schema_errors(REQUESTED, case) == []), (case, verdict)
    assert verdicts.count("accept") >= 5, verdicts


def test_fuzz_corpus_gets_the_same_verdict_from_parser_and_schema():
    paths = sorted(glob.glob(os.path.join(CORPUS, "*.json")))
    raws = []
    for p in paths:
        with open(p, "rb") as f:
            raws.append(f.read())
    verdicts = parser_verdicts(raws)
    checked = 0
    for path, raw, verdict in zip(paths, raws, verdicts):
        name = os.path.basename(path)
        accepted = verdict == "accept"
        if accepted:
            assert schema_accepts(raw), name
        elif name not in PARSER_ONLY_CHECKS:
            assert not schema_accepts(raw), (name, verdict)
        checked += 1
    assert checked == len(paths) >= 40


@pytest.mark.parametrize("flags", [
    [],
    ["--locale", "de-DE", "--purpose", "signup", "--ttl", "120", "--code-length", "8"],
    ["--gate", "--amd", "--sms-fallback", "--metadata", '{"tenant":"t1","n":[1,2]}'],
    ["--channel", "sms"],
    ["--channel", "voice", "--request-id", "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01"],
    ["--keypad-code", "123456"],
    ["resend"],
    ["resend", "--channel", "sms"],
])
def test_every_message_otp_produce_can_emit_validates(flags):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    # A fresh key pair, so the sealed code is a real sealed box.
    keys = subprocess.run([os.path.join(ROOT, "bin", "otp-worker"), "--keygen"], capture_output=True,
                          text=True, check=True).stdout
    env["OTP_KEYPAD_PUBLIC_KEY"] = re.search(r"OTP_KEYPAD_PUBLIC_KEY=(\w+)", keys).group(1)
    if flags[:1] == ["resend"]:
        args = ["--resend", "5d0f3c1e-8a7b-4e2d-9c6f-1b2a3c4d5e6f"] + flags[1:]
    else:
        args = ["--phone", "+14155552671", "--user", "u-42"] + flags
    out = subprocess.run([PRODUCE, "--dry-run"] + args, capture_output=True, text=True, env=env,
                         check=True).stdout.splitlines()
    assert len(out) == 1, out
    assert schema_errors(REQUESTED, json.loads(out[0])) == [], out[0]
    assert parser_verdicts(out) == ["accept"]


def test_otp_produce_file_mode_emits_valid_messages():
    lines = [json.dumps({"user_id": "u-%d" % i, "phone": "+1415555%04d" % i}) for i in range(5)]
    lines.append(json.dumps({"resend_of": SAMPLES["resend_of"], "delivery": {"channel": "sms"}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    out = subprocess.run([PRODUCE, "--dry-run", "--file", "-"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert len(out) == len(lines)
    for line in out:
        assert schema_errors(REQUESTED, json.loads(line)) == [], line


ASYNCAPI = os.path.join(SCHEMA_DIR, "asyncapi.yaml")
ASYNCAPI_CHECK = os.path.join(ROOT, "tests", "tools", "asyncapi-check.js")


def asyncapi_check(path):
    assert os.path.isdir(os.path.join(ROOT, "tests", "tools", "node_modules", "@asyncapi")), \
        "run `make test-tools` (npm ci in tests/tools)"
    return subprocess.run(["node", ASYNCAPI_CHECK, path], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_asyncapi_document_is_valid_and_resolves_the_schemas():
    r = asyncapi_check(ASYNCAPI)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["version"].startswith("3."), summary
    assert set(summary["channels"]) == {"otp.requested", "otp.requested.{service}",
                                        "otp.call_status", "otp.requested.dlq"}, summary
    # Each payload was read from its JSON Schema: as many properties as the schema has.
    want = [len(load_schema(t + ".schema.json")["properties"])
            for t in ("otp.requested", "otp.call_status", "otp.requested.dlq")]
    assert summary["payload_types"] == want, (summary, want)


def test_asyncapi_check_refuses_a_broken_document(tmp_path):
    """The checker fails on a dangling $ref and on a message without its channel's address."""
    with open(ASYNCAPI, encoding="utf-8") as f:
        text = f.read()
    for name, broken in (("ref", text.replace("./otp.call_status.schema.json",
                                              "./missing.schema.json")),
                         ("addr", text.replace("address: otp.call_status", "address: [1, 2]"))):
        assert broken != text
        p = tmp_path / ("broken-%s.yaml" % name)
        p.write_text(broken, encoding="utf-8")
        for s in glob.glob(os.path.join(SCHEMA_DIR, "*.schema.json")):
            (tmp_path / os.path.basename(s)).write_text(open(s, encoding="utf-8").read())
        r = asyncapi_check(str(p))
        assert r.returncode != 0, (name, r.stdout)


def test_asyncapi_headers_are_the_ones_the_programs_set():
    import yaml
    with open(ASYNCAPI, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    msgs = doc["components"]["messages"]

    def set_in(path):
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            return set(re.findall(r'RD_KAFKA_V_HEADER\("([^"]+)"', f.read()))

    status = set(msgs["callStatus"]["headers"]["properties"])
    assert status == set_in("worker/relay.c"), status
    assert set(msgs["callStatus"]["headers"]["required"]) == status
    assert set(msgs["deadLetter"]["headers"]["properties"]) == set_in("worker/ingest.c")
    assert set(msgs["otpRequested"]["headers"]["properties"]) == set_in("verifier/front.c")
    types = load_schema("otp.call_status.schema.json")["properties"]["type"]["enum"]
    pattern = msgs["callStatus"]["headers"]["properties"]["ce_type"]["pattern"]
    for t in types:
        assert re.match(pattern, "net.voipbin.otp.call_status." + t), t


def test_readme_status_list_is_the_schema_type_enum():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    m = re.search(r"- `otp\.call_status` \(key: request_id\)[^:]*types:(.*?)\(this list", readme,
                  re.S)
    assert m, "README's otp.call_status list not found"
    listed = re.findall(r"`([a-z_]+)`", m.group(1))
    types = load_schema("otp.call_status.schema.json")["properties"]["type"]["enum"]
    assert len(listed) == len(set(listed)), listed
    assert sorted(listed) == sorted(types), (set(types) - set(listed), set(listed) - set(types))
