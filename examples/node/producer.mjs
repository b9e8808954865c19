// SPDX-License-Identifier: Apache-2.0
// An application publishing one `otp.requested` event with kafkajs (npm install kafkajs@2.2.4),
// as schema/otp.requested.schema.json and schema/asyncapi.yaml say: key = the phone in E.164
// (one number's requests stay in order), value = the JSON event; no headers (the ones the
// document names, otp.source and otp.api_key_id, are set by the verifier's front door only).
//   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 node producer.mjs +14155552671 user-42 [locale]
// Prints {"request_id","partition","offset"} once the broker acknowledged the event. Keep
// request_id: it is the idempotency key, and what POST /v1/verify and GET /v1/requests/{id} take.
// OTP_TOPIC_REQUESTS names another topic (otp.requested.<service> for a service of its own).
//
// Two settings differ from kafkajs's defaults, on purpose:
// - The partitioner is librdkafka's default (consistent_random: CRC-32 of the key modulo the
//   partition count), the one otp-produce, otp-admin and the verifier's front door use, so a
//   number's requests land in one partition whoever publishes them (kafkajs's default is
//   murmur2, Java's: another partition for the same phone, and no order between them).
// - Not kafkajs's idempotent producer: kafkajs asks the cluster's controller for a producer id,
//   and librdkafka 2.0.2's mock cluster (the local stack's broker) names controller 0, a broker
//   that does not exist (its brokers are 1..N), so connect() fails with KafkaJSBrokerNotFound.
//   Nothing is lost by it: request_id is the idempotency key, so a retried send that lands twice
//   is one request to the workers; acks=all and one request in flight keep retries in order.
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
// librdkafka's consistent_random: the same partition for the same key as the C programs.
const librdkafkaPartitioner = () => ({ partitionMetadata, message }) =>
  crc32(Buffer.from(message.key)) % partitionMetadata.length;

const [phone, user, locale] = process.argv.slice(2);
if (!phone || !user) {
  console.error('usage: node producer.mjs PHONE USER_ID [LOCALE]');
  process.exit(2);
}
const event = {
  schema_version: 1,
  request_id: randomUUID(),
  user_id: user,
  phone,
  purpose: 'login',
  // RFC 3339 in UTC; it only refuses stale requests, the code's life is the worker's clock.
  requested_at: new Date().toISOString(),
  ...(locale ? { locale } : {}),
};

const kafka = new Kafka({
  clientId: 'otp-example-producer',
  brokers: (process.env.KAFKA_BOOTSTRAP_SERVERS ?? 'localhost:9092').split(','),
  logLevel: logLevel.WARN,
});
const producer = kafka.producer({ createPartitioner: librdkafkaPartitioner,
                                  maxInFlightRequests: 1 });
await producer.connect();
try {
  const [meta] = await producer.send({
    topic: process.env.OTP_TOPIC_REQUESTS ?? 'otp.requested',
    acks: -1,
    timeout: 30000,
    messages: [{ key: phone, value: JSON.stringify(event) }],
  });
  console.log(JSON.stringify({ request_id: event.request_id, partition: meta.partition,
                               offset: Number(meta.baseOffset) }));
} finally {
  await producer.disconnect();
}
