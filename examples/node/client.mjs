// A backend's use of the verifier with Node's fetch (Node 18+): ask for a call
// (POST /v1/requests), follow its state by long-poll, check the code (POST /v1/verify).
//   OTP_URL=http://127.0.0.1:8080 OTP_API_KEY=... node client.mjs +14155552671 user-42
// Prints one JSON line per state; reads the code from stdin once the call was delivered.
import readline from 'node:readline';

const BASE = process.env.OTP_URL ?? 'http://127.0.0.1:8080';
const KEY = process.env.OTP_API_KEY; // keep it on the server, never in a browser

async function call(method, path, body) {
  const r = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return [r.status, await r.json()];
}

const [phone, user] = process.argv.slice(2);
const [st, res] = await call('POST', '/v1/requests', { phone, user_id: user, purpose: 'login' });
if (st !== 202) throw new Error(`not accepted: ${st} ${JSON.stringify(res)}`);
const rid = res.request_id;
console.log(JSON.stringify({ request_id: rid }));
let version = null;
for (;;) {
  const [s, state] = await call('GET', `/v1/requests/${rid}?wait=25` +
                                (version ? `&since=${version}` : ''));
  if (s !== 200) throw new Error(`status: ${s} ${JSON.stringify(state)}`);
  if (state.version !== version) console.log(JSON.stringify({ status: state.status }));
  version = state.version;
  if (state.status === 'delivered') break;
  if (['failed', 'expired', 'rejected', 'rate_limited', 'blocked'].includes(state.status)) {
    throw new Error(`ended: ${state.status}`);
  }
}
const rl = readline.createInterface({ input: process.stdin });
const code = (await rl[Symbol.asyncIterator]().next()).value.trim();
rl.close();
const [vs, vres] = await call('POST', '/v1/verify', { request_id: rid, code });
console.log(JSON.stringify({ verify: vs, ...vres }));
process.exit(vres.status === 'verified' ? 0 : 1);
