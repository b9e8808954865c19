// Receives signed status webhooks and checks them before use: header
// OTP-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>, refused (401)
// when the signature does not match or t is more than 5 minutes away (a replay).
//   OTP_WEBHOOK_SIGNING_SECRET=... node webhook_receiver.mjs 127.0.0.1:9000
// Prints each accepted event as one JSON line.
import crypto from 'node:crypto';
import http from 'node:http';

const TOLERANCE = 300;

export function signatureOk(secret, header, body, now = Date.now() / 1000) {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => {
    const i = p.indexOf('=');
    return [p.slice(0, i), p.slice(i + 1)];
  }));
  if (!/^[0-9]+$/.test(parts.t ?? '')) return false;
  const t = Number(parts.t);
  if (Math.abs(now - t) > TOLERANCE) return false;
  const want = crypto.createHmac('sha256', secret).update(`${t}.`).update(body).digest();
  const got = Buffer.from(parts.v1 ?? '', 'hex');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

const [host, port] = process.argv[2].split(':');
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (!signatureOk(process.env.OTP_WEBHOOK_SIGNING_SECRET, req.headers['otp-signature'], body)) {
      res.writeHead(401).end('{"error":"bad or old signature"}');
      return;
    }
    console.log(JSON.stringify(JSON.parse(body))); // use the event here (dedup by event_id)
    res.writeHead(200).end();
  });
}).listen(Number(port), host);
