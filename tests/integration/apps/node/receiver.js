'use strict';
// receiver.js - a real Node.js webhook receiver for smtphook's integration tests.
//
//   node receiver.js PORT [LOGFILE] [--secrets=whsec_a,whsec_b] [--public-keys=whpk_a]
//                                   [--status=200] [--def-param-charset=utf8]
//
// Environment (flags win): RECEIVER_LOG, RECEIVER_SECRETS, RECEIVER_PUBLIC_KEYS,
// RECEIVER_STATUS, RECEIVER_DEF_PARAM_CHARSET, RECEIVER_KEEPALIVE_MS.
//
// Listens on 127.0.0.1:PORT, prints "listening PORT" once it does, and appends one JSON line
// per request to LOGFILE (stdout when none). Exits on SIGTERM/SIGINT.
//
// --status may be a list (503,200): the n-th POST is answered with the n-th status, the
// ones after the list's end with its last. A request whose body never ended (the client
// closed the connection inside it) is recorded too, as {"aborted": true, ...} with the head
// and the body bytes that came.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const busboy = require('busboy');
const { Webhook } = require('standardwebhooks');

const TOLERANCE = 5 * 60; // seconds; the same window the standardwebhooks package enforces
const KEEP_BODY_MAX = 2 * 1024 * 1024; // body_b64 is recorded up to this size

function options(argv, env) {
  const flags = {};
  const pos = [];
  for (const a of argv) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(a);
    if (m) flags[m[1]] = m[2];
    else pos.push(a);
  }
  const list = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);
  return {
    port: Number(pos[0] || 0),
    log: pos[1] || env.RECEIVER_LOG || '',
    secrets: list(flags.secrets ?? env.RECEIVER_SECRETS),
    publicKeys: list(flags['public-keys'] ?? env.RECEIVER_PUBLIC_KEYS),
    statuses: list(String(flags.status ?? env.RECEIVER_STATUS ?? 200)).map(Number),
    defParamCharset: flags['def-param-charset'] ?? env.RECEIVER_DEF_PARAM_CHARSET ?? 'utf8',
    keepAliveMs: Number(env.RECEIVER_KEEPALIVE_MS || 60000),
  };
}

// An Ed25519 public key object from "whpk_<base64 of the 32-byte key>"; "whsk_<base64 of the
// 32-byte seed, or of seed||public key (64 bytes)>" is accepted too (its public half is used).
function ed25519Key(text) {
  const m = /^(whpk|whsk)_(.*)$/s.exec(text);
  if (!m) throw new Error('expected a whpk_ or whsk_ key');
  const raw = Buffer.from(m[2], 'base64');
  if (m[1] === 'whpk') {
    if (raw.length !== 32) throw new Error(`whpk_ key is ${raw.length} bytes, not 32`);
    return crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  }
  if (raw.length !== 32 && raw.length !== 64) throw new Error(`whsk_ key is ${raw.length} bytes, not 32 or 64`);
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), raw.subarray(0, 32)]);
  return crypto.createPublicKey(crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

function errorInfo(e) {
  return { ok: false, error: String(e && e.message), error_name: e && e.name };
}

function timestampError(ts) {
  const t = parseInt(ts, 10);
  const now = Math.floor(Date.now() / 1000);
  if (Number.isNaN(t)) return 'Invalid Signature Headers';
  if (now - t > TOLERANCE) return 'Message timestamp too old';
  if (t > now + TOLERANCE) return 'Message timestamp too new';
  return null;
}

function verifyWebhook(cfg, headers, raw) {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sig = headers['webhook-signature'];
  if (id === undefined && ts === undefined && sig === undefined) return null;
  const offered = (sig || '').split(' ').filter(Boolean);
  const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`, 'utf8'), raw]);
  const out = { id, timestamp: ts, signatures: offered, timestamp_error: timestampError(ts),
                body_is_utf8: Buffer.from(raw.toString('utf8'), 'utf8').equals(raw),
                v1: [], v1a: [], verified_by: [] };

  cfg.secrets.forEach((secret, index) => {
    // The official package. jsonParse:false, else a valid signature over a non-JSON body
    // (multipart) throws JSON.parse's SyntaxError after the signature matched.
    let r;
    try {
      new Webhook(secret).verify(raw, headers, { jsonParse: false });
      r = { ok: true };
    } catch (e) {
      r = errorInfo(e);
    }
    // The same check over the raw bytes: the package decodes a Buffer body as UTF-8 first.
    let rawOk = false;
    try {
      const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
      const mac = crypto.createHmac('sha256', key).update(signed).digest('base64');
      rawOk = offered.some((s) => s === `v1,${mac}`);
    } catch (e) { /* reported by the package's result */ }
    out.v1.push({ index, key: secret.slice(0, 10) + '...', ...r, raw_hmac_match: rawOk });
    if (r.ok) out.verified_by.push(`v1:${index}`);
  });

  cfg.publicKeys.forEach((pk, index) => {
    let r;
    try {
      const key = ed25519Key(pk);
      const match = offered.some((s) => {
        const [v, b64] = s.split(',');
        return v === 'v1a' && b64 && crypto.verify(null, signed, key, Buffer.from(b64, 'base64'));
      });
      if (!id || !ts || !sig) r = { ok: false, error: 'Missing required headers' };
      else if (out.timestamp_error) r = { ok: false, error: out.timestamp_error, signature_match: match };
      else r = match ? { ok: true } : { ok: false, error: 'No matching signature found' };
    } catch (e) {
      r = errorInfo(e);
    }
    out.v1a.push({ index, key: pk.slice(0, 10) + '...', via: 'node:crypto ed25519', ...r });
    if (r.ok) out.verified_by.push(`v1a:${index}`);
  });
  out.verified = out.verified_by.length > 0;
  return out;
}

function parseMultipart(cfg, headers, raw) {
  return new Promise((resolve) => {
    const parts = [];
    const pending = [];
    let bb;
    try {
      bb = busboy({ headers, defParamCharset: cfg.defParamCharset, preservePath: true,
                    limits: { fieldSize: 256 * 1024 * 1024 } });
    } catch (e) {
      resolve({ ok: false, error: e.message, parts });
      return;
    }
    bb.on('field', (name, value, info) => {
      parts.push({ kind: 'field', name, filename: null, mime_type: info.mimeType,
                   encoding: info.encoding, value_truncated: info.valueTruncated,
                   value, value_b64: Buffer.from(value, 'utf8').toString('base64') });
    });
    bb.on('file', (name, stream, info) => {
      const part = { kind: 'file', name, filename: info.filename ?? null, mime_type: info.mimeType,
                     encoding: info.encoding };
      parts.push(part);
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      pending.push(new Promise((done) => stream.on('close', () => {
        const data = Buffer.concat(chunks);
        part.size = data.length;
        part.value_b64 = data.toString('base64');
        part.truncated = stream.truncated;
        done();
      })));
    });
    bb.on('error', (e) => resolve({ ok: false, error: e.message, parts }));
    bb.on('close', () => Promise.all(pending).then(() => resolve({ ok: true, parts })));
    bb.end(raw);
  });
}

async function record(cfg, req, raw) {
  const type = (req.headers['content-type'] || '').toLowerCase();
  const entry = {
    method: req.method, path: req.url, headers: req.headers, raw_headers: req.rawHeaders,
    http_version: req.httpVersion, client_port: req.socket.remotePort,
    body_length: raw.length, body_sha256: crypto.createHash('sha256').update(raw).digest('hex'),
    body_b64: raw.length <= KEEP_BODY_MAX ? raw.toString('base64') : null,
    webhook: verifyWebhook(cfg, req.headers, raw),
  };
  if (type.startsWith('multipart/form-data')) entry.multipart = await parseMultipart(cfg, req.headers, raw);
  if (/^application\/([a-z0-9.+-]*\+)?json\b/.test(type)) {
    try {
      entry.json = { parsed: true, value: JSON.parse(raw.toString('utf8')) };
    } catch (e) {
      entry.json = { parsed: false, error: e.message };
    }
  }
  return entry;
}

function main() {
  const cfg = options(process.argv.slice(2), process.env);
  const write = (entry) => {
    const line = JSON.stringify(entry) + '\n';
    if (cfg.log) fs.appendFileSync(cfg.log, line);
    else process.stdout.write(line);
  };
  let posts = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    let received = 0;
    let ended = false;
    req.on('data', (c) => {
      chunks.push(c);
      received += c.length;
    });
    req.on('error', () => { /* a cut-off body: recorded by 'close' below */ });
    req.on('close', () => {
      if (ended || req.complete) return;
      const raw = Buffer.concat(chunks);
      write({ aborted: true, method: req.method, path: req.url, headers: req.headers,
              http_version: req.httpVersion, body_bytes_received: received,
              body_b64: raw.length <= KEEP_BODY_MAX ? raw.toString('base64') : null });
    });
    req.on('end', async () => {
      ended = true;
      const status = cfg.statuses[Math.min(posts, cfg.statuses.length - 1)];
      if (req.method === 'POST') posts++;
      const raw = Buffer.concat(chunks);
      let entry;
      try {
        entry = await record(cfg, req, raw);
      } catch (e) {
        entry = { method: req.method, path: req.url, error: String(e && e.stack) };
      }
      // recorded before answering: a client that saw the answer finds the line in the log
      if (req.method === 'POST') write(entry);
      const body = status === 204 || status === 304 ? '' : 'ok\n';
      res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = cfg.keepAliveMs;
  server.listen(cfg.port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
