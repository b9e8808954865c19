#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""An application publishing one `otp.requested` event with confluent-kafka (librdkafka), as
schema/otp.requested.schema.json and schema/asyncapi.yaml say: key = the phone in E.164 (one
number's requests stay in order), value = the JSON event; no headers (the ones the document
names, otp.source and otp.api_key_id, are set by the verifier's front door only).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python3 producer.py +14155552671 user-42 [locale]

Prints {"request_id", "partition", "offset"} once the broker has acknowledged the event; exits 1
if it did not within 30 s. Keep request_id: it is the idempotency key (publishing the same event
again calls no one twice) and what POST /v1/verify and GET /v1/requests/{id} take.
OTP_TOPIC_REQUESTS names another topic (`otp.requested.<service>` for a service of its own)."""
import json
import os
import sys
import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: producer.py PHONE USER_ID [LOCALE]")
    phone, user = sys.argv[1], sys.argv[2]
    event = {
        "schema_version": 1,
        "request_id": str(uuid.uuid4()),
        "user_id": user,
        "phone": phone,
        "purpose": "login",
        # RFC 3339 in UTC; it only refuses stale requests, the code's life is the worker's clock.
        "requested_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")
                                .replace("+00:00", "Z"),
    }
    if len(sys.argv) == 4:
        event["locale"] = sys.argv[3]
    producer = Producer({
        "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        # Retries inside librdkafka never duplicate or reorder: acks=all, idempotent.
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 30000,
    })
    result = {}

    def delivered(err, msg):
        if err is not None:
            result["error"] = str(err)
        else:
            result.update(partition=msg.partition(), offset=msg.offset())

    producer.produce(os.environ.get("OTP_TOPIC_REQUESTS", "otp.requested"),
                     key=phone.encode(), value=json.dumps(event).encode(),
                     on_delivery=delivered)
    left = producer.flush(35)
    if left or "error" in result or "offset" not in result:
        sys.exit("not delivered: %s" % result.get("error", "timed out"))
    print(json.dumps({"request_id": event["request_id"], **result}), flush=True)


if __name__ == "__main__":
    main()
