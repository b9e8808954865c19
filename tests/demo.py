# SPDX-License-Identifier: Apache-2.0
"""make demo: the whole pipeline on a local stack, one OTP request end to end.

Starts a real PostgreSQL server, the local Kafka broker, the VoIPBin simulator, one otp-worker
and one otp-verifier in a temporary directory; publishes a request with otp-produce; shows the
call as the simulator received it, the status events, answers the call as a person would (takes
the digits from the spoken text), verifies the code, and stops everything (also on Ctrl-C).

With OTP_VOIPBIN_ACCESS_KEY, OTP_CALLER_ID and OTP_DEMO_PHONE set, the call goes to the real
api.voipbin.net instead, and the demo asks you to type the code you heard.
"""

import os
import re
import sys

from stack import Stack
import pipeline as P
from testkit import WaitTimeout, wait_until


BOLD, PLAIN = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


def say(step, text):
    print("%s%-10s%s %s" % (BOLD, step, PLAIN, text), flush=True)


def main():
    real = all(os.environ.get(k) for k in ("OTP_VOIPBIN_ACCESS_KEY", "OTP_CALLER_ID", "OTP_DEMO_PHONE"))
    audio = os.environ.get("OTP_DEMO_AUDIO", "1") != "0"
    with Stack() as s:
        say("stack", "starting PostgreSQL, Kafka broker%s in %s" % (
            "" if real else ", VoIPBin simulator", s.root_dir))
        sim_args = []
        if audio and not real:
            sim_args = ["--audio-dir", os.path.join(s.root_dir, "audio")]
        p = P.Pipeline(s, sim_args=sim_args, time_scale=1.0)
        if real:
            p.sim.api_url = os.environ.get("OTP_VOIPBIN_BASE_URL", "https://api.voipbin.net/v1.0")
            p.access_key = os.environ["OTP_VOIPBIN_ACCESS_KEY"]
        say("migrate", p.migrate())
        p.start_verifier()
        say("verifier", "listening on 127.0.0.1:%d" % p.verifier_port)
        env = {}
        if real:
            env = {"OTP_CALLER_ID": os.environ["OTP_CALLER_ID"],
                   "OTP_VOIPBIN_ACCESS_KEY": os.environ["OTP_VOIPBIN_ACCESS_KEY"],
                   "OTP_VOIPBIN_BASE_URL": p.sim.api_url}
        p.start_worker(**env)
        say("worker", "consuming otp.requested")
        dest = os.environ.get("OTP_DEMO_PHONE", "+12015550123")
        locale = os.environ.get("OTP_DEMO_LOCALE", "en-US")
        [rid] = p.produce([{"phone": dest, "user_id": "demo-user", "locale": locale}])
        say("produce", "otp.requested request_id=%s phone=%s locale=%s" % (rid, dest, locale))

        if real:
            code = input("Type the code you heard: ").strip()
        else:
            [call] = p.wait_calls(1, pred=lambda c: c["target"] == dest, timeout=60)
            body = P.call_request(call)
            say("call", "POST /v1.0/calls → call %s to %s" % (call["id"], call["target"]))
            for a in body["actions"]:
                say("", "action %s %s" % (a["type"], (a.get("option") or {}).get("language", "")))
            call = wait_until(lambda: (lambda c: c if c.get("talks") else None)(
                p.calls_to(dest)[0]), 60, "the call to speak", interval=0.3)
            text = P.call_texts(call)[0]
            # What the voice says: a digit's <sub alias> word, every other tag dropped.
            said = re.sub(r'<sub alias="([^"]*)">[^<]*</sub>', r" \1 ", text)
            plain = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", said))
            say("spoken", plain.strip())
            code = P.spoken_code(text)
            say("answer", "the callee heard the code %s" % code)
            if audio:
                try:
                    talk = wait_until(lambda: (lambda t: t if t.get("wav") and not t.get(
                        "audio_pending") else None)(p.calls_to(dest)[0]["talks"][0]), 30,
                        "the talk's audio", interval=0.3)
                    say("audio", "%s (%.1f s) — play it with: aplay %s" % (
                        talk["wav"], talk.get("seconds") or 0, talk["wav"]))
                except WaitTimeout as e:
                    say("audio", str(e))
        st, body = p.verify(rid, code)
        say("verify", "POST /v1/verify → %d %s" % (st, body))
        st, body = p.verify(rid, code)
        say("again", "POST /v1/verify (same code) → %d %s" % (st, body["status"]))
        try:
            p.status.wait_for(lambda evs: "delivered" in [e["type"] for e in evs], timeout=30)
        except AssertionError:
            pass
        for e in sorted(p.status.of(rid), key=lambda e: e["seq"]):
            extra = {k: e[k] for k in ("call_id", "attempt", "hangup_reason", "attempts_left", "locale")
                     if k in e}
            say("status", "%-15s %s %s" % (e["type"], e["phone"] if "phone" in e else "", extra))
        p.close()
        say("stop", "stopping everything")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped")
        sys.exit(130)
