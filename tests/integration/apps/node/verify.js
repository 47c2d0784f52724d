'use strict';
// verify.js - Standard Webhooks v1 verification with the official package alone, for
// smtphook's integration tests (test vectors, recorded requests with a byte changed).
//
//   echo '[{"secret": "whsec_...", "headers": {...}, "body_b64": "...", "now": 1614265330}]' |
//     node verify.js
//
// Reads a JSON array of cases from stdin and prints a JSON array of results, one per case:
// {"ok": true} when Webhook(secret).verify(body, headers) returned, else {"ok": false,
// "error": message, "error_name": name}; and "signature": the package's sign() of the case's
// webhook-id, webhook-timestamp and body. "now" (Unix seconds; null or absent: the real clock) is what Date.now() returns
// while the case is verified, so vectors older than the package's 5-minute window verify.

const { Webhook } = require('standardwebhooks');

function main(input) {
  const cases = JSON.parse(input);
  const realNow = Date.now;
  const out = cases.map((c) => {
    const body = Buffer.from(c.body_b64, 'base64');
    const r = {};
    Date.now = c.now == null ? realNow : () => c.now * 1000;
    try {
      const wh = new Webhook(c.secret);
      try {
        wh.verify(body, c.headers, { jsonParse: false });
        r.ok = true;
      } catch (e) {
        Object.assign(r, { ok: false, error: String(e && e.message), error_name: e && e.name });
      }
      const ts = parseInt(c.headers['webhook-timestamp'], 10);
      r.signature = wh.sign(c.headers['webhook-id'], new Date(ts * 1000), body);
    } finally {
      Date.now = realNow;
    }
    return r;
  });
  process.stdout.write(JSON.stringify(out) + '\n');
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => main(input));
