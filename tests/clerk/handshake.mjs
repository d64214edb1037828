// Clerk's reference decision for browser requests (the handshake), for
// tests/handshake_differential.rs: @clerk/backend's authenticateRequest, as
// shared/docs/clerk-handshake.md section 7 runs it.
//
// Usage: node tests/clerk/handshake.mjs < requests.jsonl
//
// Input on stdin, one JSON object per line:
//   {"id": "2",
//    "publishableKey": "pk_live_...", "secretKey": "sk_...", "jwtKey": "<PEM>",
//    "apiUrl": "http://127.0.0.1:PORT",          // the fake Backend API (nonces, refresh)
//    "options": {"authorizedParties": [...], "proxyUrl": "...", "signInUrl": "..."},
//    "request": {"url": "https://app.example.com/dash?x=1", "method": "GET",
//                "headers": [["cookie", "..."], ["sec-fetch-dest", "document"], ...]},
//    "nowMs": 1767225600000}
// Output on stdout: first {"clerkBackend": "<version>", "node": "<version>"}, then one line per
// request, in order:
//   {"id", "status": "signed-in"|"signed-out"|"handshake", "reason", "message",
//    "httpStatus": 307 if a Location is set, else 200 signed-in, else 401,
//    "location": string|null, "setCookies": [...in order], "cacheControl": string|null,
//    "clerkUrl": the URL the SDK saw (after X-Forwarded-*),
//    "cleanUrl": clerkUrl without __clerk_handshake, __clerk_help, __clerk_db_jwt,
//                __clerk_handshake_nonce (re-serialized as the SDK's dev return leg does),
//    "signInUrl": createRedirect(...).redirectToSignIn({returnBackUrl: clerkUrl}) or null,
//    "signInUrlClean": the same with returnBackUrl = cleanUrl,
//    "devBrowserToken": what the SDK would forward, or null}
// or, when authenticateRequest rejects (development return leg with a bad handshake token),
//   {"id", "rejected": "<message>", "clerkUrl", "cleanUrl", ...}.
//
// Date.now is frozen at each line's nowMs for the whole call: every time check of the SDK reads
// Date.now(). The SDK's own logging goes to stderr; stdout carries only the JSON lines.

import { readFileSync } from 'node:fs';
import { createClerkClient } from '@clerk/backend';
import { createClerkRequest, createRedirect } from '@clerk/backend/internal';

const pkg = JSON.parse(
  readFileSync(new URL('./node_modules/@clerk/backend/package.json', import.meta.url), 'utf8'),
);

// Keep stdout for results: the SDK logs with console.*.
for (const level of ['log', 'info', 'warn', 'debug']) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const realNow = Date.now;
let nowMs = null;
Date.now = () => (nowMs === null ? realNow() : nowMs);

const input = readFileSync(0, 'utf8')
  .split('\n')
  .filter((l) => l.trim().length > 0);

function cookieValue(header, name) {
  for (const part of (header || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function describeUrls(line, request) {
  const clerkRequest = createClerkRequest(request);
  const clerkUrl = new URL(clerkRequest.clerkUrl);
  const cleanUrl = new URL(clerkUrl);
  for (const p of ['__clerk_handshake', '__clerk_help', '__clerk_db_jwt', '__clerk_handshake_nonce']) {
    cleanUrl.searchParams.delete(p);
  }
  const cookie = request.headers.get('cookie');
  const devBrowserToken =
    clerkUrl.searchParams.get('__clerk_db_jwt') || cookieValue(cookie, '__clerk_db_jwt') || null;
  const signIn = (returnBackUrl) =>
    line.options?.signInUrl
      ? createRedirect({
          publishableKey: line.publishableKey,
          devBrowserToken: devBrowserToken ?? undefined,
          redirectAdapter: (url) => url,
          baseUrl: clerkUrl,
          signInUrl: line.options.signInUrl,
        }).redirectToSignIn({ returnBackUrl })
      : null;
  return {
    clerkUrl: clerkUrl.href,
    cleanUrl: cleanUrl.href,
    signInUrl: signIn(clerkUrl.href),
    signInUrlClean: signIn(cleanUrl.href),
    devBrowserToken,
  };
}

const out = [JSON.stringify({ clerkBackend: pkg.version, node: process.version })];
for (const text of input) {
  const line = JSON.parse(text);
  const { id, request: r } = line;
  const makeRequest = () =>
    new Request(r.url, { method: r.method || 'GET', headers: new Headers(r.headers || []) });
  nowMs = line.nowMs ?? null;
  let result;
  try {
    const urls = describeUrls(line, makeRequest());
    const clerk = createClerkClient({
      publishableKey: line.publishableKey,
      secretKey: line.secretKey,
      jwtKey: line.jwtKey,
      apiUrl: line.apiUrl,
      telemetry: { disabled: true },
    });
    try {
      const st = await clerk.authenticateRequest(makeRequest(), line.options || {});
      const location = st.headers.get('location');
      result = {
        id,
        status: st.status,
        reason: st.reason ?? null,
        message: st.message ?? null,
        httpStatus: location ? 307 : st.status === 'signed-in' ? 200 : 401,
        location,
        setCookies: st.headers.getSetCookie(),
        cacheControl: st.headers.get('cache-control'),
        ...urls,
      };
    } catch (err) {
      result = { id, rejected: String(err?.message ?? err), ...urls };
    }
  } catch (err) {
    // A shape the oracle cannot even describe is a bug in the test.
    result = { id, error: String(err?.stack ?? err) };
  }
  nowMs = null;
  out.push(JSON.stringify(result));
}
process.stdout.write(out.join('\n') + '\n');
