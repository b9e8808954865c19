#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A backend's use of the verifier, Python standard library only: ask for a call
(POST /v1/requests), follow its state by long-poll (GET /v1/requests/{id}?wait=25&since=...),
then check the code the user typed (POST /v1/verify).

    OTP_URL=http://127.0.0.1:8080 OTP_API_KEY=... python3 client.py +14155552671 user-42
Prints one JSON line per state; reads the code from stdin once the call was delivered."""
import json
import os
import sys
import urllib.error
import urllib.request

BASE = os.environ.get("OTP_URL", "http://127.0.0.1:8080")
KEY = os.environ["OTP_API_KEY"]  # keep it on the server, never in a browser
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(method, path, body=None, timeout=35):
    req = urllib.request.Request(BASE + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + KEY,
                                          "Content-Type": "application/json"})
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    phone, user = sys.argv[1], sys.argv[2]
    st, res = call("POST", "/v1/requests", {"phone": phone, "user_id": user, "purpose": "login"})
    if st != 202:
        sys.exit("not accepted: %s %s" % (st, res))
    rid = res["request_id"]
    print(json.dumps({"request_id": rid}), flush=True)
    version = None
    while True:
        st, state = call("GET", "/v1/requests/%s?wait=25%s" %
                         (rid, "&since=" + version if version else ""))
        if st != 200:
            sys.exit("status: %s %s" % (st, state))
        if state["version"] != version:
            print(json.dumps({"status": state["status"]}), flush=True)
        version = state["version"]
        if state["status"] == "delivered":
            break
        if state["status"] in ("failed", "expired", "rejected", "rate_limited", "blocked"):
            sys.exit("ended: %s" % state["status"])
    code = sys.stdin.readline().strip()
    st, res = call("POST", "/v1/verify", {"request_id": rid, "code": code})
    print(json.dumps({"verify": st, **res}), flush=True)
    sys.exit(0 if res.get("status") == "verified" else 1)


if __name__ == "__main__":
    main()
