// The Node peer of bench/run.sh: Clerk's own SDK doing what jwtgate does.
// One process, Node's http module, `verifyToken` from @clerk/backend with
// a networkless PEM key (`jwtKey`), the same issuer and authorized party
// as jwtgate is configured with. `GET /auth` answers 200 with X-User-Id and
// X-Session-Id (Content-Length 0), or 401; `/readyz` answers 200.
//
//   npm ci && PORT=7079 JWT_KEY_FILE=jwt.pem ISSUER=https://... AZP=https://... node server.mjs
//
// The token comes from `Authorization: Bearer`, else the `__session` cookie,
// as in jwtgate. @clerk/backend keeps no cache of verified tokens: every
// request is a full RS256 verify (WebCrypto), which is what Clerk's
// middleware does per request.
import http from "node:http";
import { readFileSync } from "node:fs";
import { verifyToken } from "@clerk/backend";

const port = Number(process.env.PORT ?? 7079);
const options = {
  jwtKey: readFileSync(process.env.JWT_KEY_FILE, "utf8"),
  issuer: process.env.ISSUER || undefined,
  authorizedParties: process.env.AZP ? [process.env.AZP] : undefined,
};

function tokenOf(req) {
  const auth = req.headers.authorization;
  if (auth && auth.slice(0, 7).toLowerCase() === "bearer ") return auth.slice(7).trim();
  const cookies = req.headers.cookie ?? "";
  for (const part of cookies.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === "__session") return value.join("=");
  }
  return null;
}

function answer(res, status, headers = {}) {
  res.writeHead(status, { "Content-Length": "0", ...headers });
  res.end();
}

const server = http.createServer(async (req, res) => {
  const path = req.url.split("?")[0];
  if (path === "/readyz" || path === "/healthz") return answer(res, 200);
  if (path !== "/auth") return answer(res, 404);
  const token = tokenOf(req);
  if (!token) return answer(res, 401, { "WWW-Authenticate": "Bearer" });
  try {
    // Resolves to the claims; throws TokenVerificationError when invalid.
    const data = await verifyToken(token, options);
    const headers = { "X-User-Id": data.sub };
    if (data.sid) headers["X-Session-Id"] = data.sid;
    answer(res, 200, headers);
  } catch {
    answer(res, 401, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
  }
});
// wrk holds its connections for the whole run; keep them open between rounds.
server.keepAliveTimeout = 120_000;
server.listen(port, "127.0.0.1", () => console.error(`node peer listening on http://127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
