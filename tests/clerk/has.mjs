// Clerk's answer to jwtgate's per-location rules, for tests/rules_differential.rs.
//
// Usage: node tests/clerk/has.mjs < input.jsonl
//
// Input, one JSON object per line: {"claims": {<verified JWT payload>}, "query": "role=org:admin&..."}
// Output on stdout: first {"clerkBackend": "<version>", "clerkShared": "<version>", "node": "<version>"},
// then one line per input line, in order:
//   {"holds": [<bool per rule>], "hints": [<reverificationError JSON or null per rule>]}
//   or {"error": "<message>"} when the SDK cannot build the auth object for these claims.
//
// The auth object is built exactly as @clerk/backend builds it for a verified session token:
// signedInAuthObject(context, token, payload), which runs @clerk/shared's
// __experimental_JWTPayloadToAuthObjectProperties and createCheckAuthorization. Each rule of the
// query is one has() call with the parameter jwtgate's grammar names (the value passed as written,
// so the SDK does its own `org:` prefixing and scope splitting):
//   role=X -> has({role: X})            permission=X -> has({permission: X})
//   feature=X -> has({feature: X})      plan=X -> has({plan: X})
//   reverify=strict|strict_mfa|moderate|lax -> has({reverification: 'strict'|...})
//   reverify=N -> has({reverification: {level: 'second_factor', afterMinutes: N}})
//   reverify=L:N -> has({reverification: {level: L, afterMinutes: N}})
//   org=required -> Boolean(auth.orgId)  (not a has() parameter: the auth object's active org)
// For reverify rules, "hints" holds JSON.stringify(reverificationError(config)), what an app returns
// in a 403 body for the frontend's useReverification().

import { readFileSync } from 'node:fs';
import { reverificationError, signedInAuthObject } from '@clerk/backend/internal';

const version = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/@clerk/${name}/package.json`, import.meta.url), 'utf8'))
    .version;

const PRESETS = new Set(['strict', 'strict_mfa', 'moderate', 'lax']);

function reverificationConfig(value) {
  if (PRESETS.has(value)) {
    return value;
  }
  const colon = value.indexOf(':');
  if (colon === -1) {
    return { level: 'second_factor', afterMinutes: Number(value) };
  }
  return { level: value.slice(0, colon), afterMinutes: Number(value.slice(colon + 1)) };
}

function decide(claims, query) {
  const auth = signedInAuthObject({}, 'token', claims);
  const holds = [];
  const hints = [];
  for (const [key, value] of new URLSearchParams(query)) {
    let hint = null;
    switch (key) {
      case 'role':
      case 'permission':
      case 'feature':
      case 'plan':
        holds.push(auth.has({ [key]: value }));
        break;
      case 'reverify': {
        const config = reverificationConfig(value);
        holds.push(auth.has({ reverification: config }));
        hint = JSON.stringify(reverificationError(config));
        break;
      }
      case 'org':
        holds.push(Boolean(auth.orgId));
        break;
      default:
        throw new Error(`has.mjs: no SDK counterpart for rule key ${key}`);
    }
    hints.push(hint);
  }
  return { holds, hints };
}

const out = [
  JSON.stringify({
    clerkBackend: version('backend'),
    clerkShared: version('shared'),
    node: process.version,
  }),
];
const lines = readFileSync(0, 'utf8')
  .split('\n')
  .filter((l) => l.length > 0);
for (const line of lines) {
  const { claims, query } = JSON.parse(line);
  let answer;
  try {
    answer = decide(claims, query);
  } catch (err) {
    if (String(err?.message).startsWith('has.mjs:')) {
      throw err;
    }
    answer = { error: String(err?.message ?? err) };
  }
  out.push(JSON.stringify(answer));
}
process.stdout.write(out.join('\n') + '\n');
