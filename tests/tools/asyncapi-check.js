// Validates an AsyncAPI document with @asyncapi/parser (pinned in package-lock.json), resolving
// its $refs to the JSON Schemas beside it. Prints every diagnostic; exits 1 on any error.
// Usage: node asyncapi-check.js schema/asyncapi.yaml
'use strict';
const fs = require('fs');
const path = require('path');
const { Parser, fromFile } = require('@asyncapi/parser');

async function main() {
  const file = path.resolve(process.argv[2]);
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, file).parse();
  let errors = 0;
  for (const d of diagnostics) {
    // severity 0 = error, 1 = warning, 2 = info, 3 = hint
    if (d.severity === 0) errors++;
    console.log(`${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code} ` +
                `${d.path.join('.')}: ${d.message}`);
  }
  if (!document || errors) {
    console.log(`FAIL ${errors} error(s)`);
    process.exit(1);
  }
  const channels = document.channels().all().map((c) => c.address());
  const messages = document.allMessages().all().map((m) => m.name());
  console.log(JSON.stringify({ version: document.version(), channels, messages,
                               payload_types: document.allMessages().all().map(
                                 (m) => Object.keys(m.payload().properties() || {}).length) }));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(2); });
