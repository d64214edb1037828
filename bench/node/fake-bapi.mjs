// The stand-in for Clerk's Backend API in bench/run.sh's browser sign-in
// rows: `GET /v1/clients/handshake_payload?nonce=...` answers every nonce
// with the payload Clerk would send after a handshake (a fresh session
// token, the client's uat, the handshake cookies cleared), exactly as
// jwtgate expects it: 200, `Content-Type: application/json`,
// `{"directives": [...]}`. Each answer carries the next token of
// TOKENS_FILE (one per line), so that jwtgate verifies each one in full,
// as it does a real handshake's new token. Plain Node, no dependency.
//
//   PORT=7080 TOKENS_FILE=pool.txt node fake-bapi.mjs
import http from "node:http";
import { readFileSync } from "node:fs";

const port = Number(process.env.PORT ?? 7080);
const tokens = readFileSync(process.env.TOKENS_FILE, "utf8").split("\n").filter(Boolean);
const epoch = "Expires=Thu, 01 Jan 1970 00:00:00 GMT";
let next = 0;
const payload = (token) =>
  JSON.stringify({
    directives: [
      `__clerk_handshake=; Path=/; Domain=bench.jwtgate.invalid; ${epoch}`,
      `__clerk_handshake_nonce=; Path=/; Domain=bench.jwtgate.invalid; ${epoch}`,
      "__client_uat=1; Path=/; Domain=bench.jwtgate.invalid; Max-Age=315360000; Secure; SameSite=Lax",
      `__session=${token}; Path=/; Secure; SameSite=Lax`,
    ],
  });

http
  .createServer((req, res) => {
    if (req.url.startsWith("/v1/clients/handshake_payload?nonce=")) {
      const body = payload(tokens[next++ % tokens.length]);
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    } else {
      res.writeHead(404, { "Content-Length": 0 });
      res.end();
    }
  })
  .listen(port, "127.0.0.1");
