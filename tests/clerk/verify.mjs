// Clerk's reference decision for a batch of tokens, for tests/clerk_differential.rs.
//
// Usage: node tests/clerk/verify.mjs <input.jsonl>
//
// Input, one JSON object per line:
//   line 1:  {"jwtKey": "<PEM public key>"}
//   then:    {"token": "...", "nowMs": 1767225600000,
//             "options": {"authorizedParties": [...], "issuer": "...", "clockSkewInMs": 5000}}
// Output on stdout: first {"clerkBackend": "<version>", "node": "<version>"}, then one line per
// token, in order: {"ok": true} or {"ok": false, "reason": "<TokenVerificationError reason>",
// "message": "..."}. A non-Clerk exception (say, a TypeError on a `null` header) is reported as
// reason "unexpected-error", which is what Clerk's authenticateRequest reports for it.
//
// Date.now is replaced so that Clerk sees exactly the token's nowMs: verifyToken reads the clock
// only through Date.now().

import { readFileSync } from 'node:fs';
import { verifyToken } from '@clerk/backend';

const pkg = JSON.parse(
  readFileSync(new URL('./node_modules/@clerk/backend/package.json', import.meta.url), 'utf8'),
);

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.length > 0);
const { jwtKey } = JSON.parse(lines[0]);

let nowMs = 0;
Date.now = () => nowMs;

const out = [JSON.stringify({ clerkBackend: pkg.version, node: process.version })];
for (const line of lines.slice(1)) {
  const { token, nowMs: at, options } = JSON.parse(line);
  nowMs = at;
  try {
    await verifyToken(token, { ...options, jwtKey });
    out.push(JSON.stringify({ ok: true }));
  } catch (err) {
    const reason = typeof err?.reason === 'string' ? err.reason : 'unexpected-error';
    out.push(JSON.stringify({ ok: false, reason, message: String(err?.message ?? err) }));
  }
}
process.stdout.write(out.join('\n') + '\n');
