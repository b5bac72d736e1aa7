// Verifies one signed HTTP request with a third-party RFC 9421
// implementation: the reverse direction of sign.mjs, for requests that
// Paybound's Go code signed.
//
// stdin:  {"lib", "method", "url", "headers": {name: value}, "jwk": {Ed25519 public JWK}}
// stdout: {"ok": true} or {"ok": false, "error": "..."}
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import { verify } from "web-bot-auth";
import { verifierFromJWK } from "web-bot-auth/crypto";
import { httpbis } from "http-message-signatures";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const spec = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let ok = false;
let error = "";
try {
  if (spec.lib === "web-bot-auth") {
    const request = new Request(spec.url, { method: spec.method, headers: spec.headers });
    await verify(request, await verifierFromJWK(spec.jwk));
    ok = true;
  } else {
    const key = createPublicKey({ key: spec.jwk, format: "jwk" });
    const result = await httpbis.verifyMessage(
      {
        keyLookup: async () => ({
          algs: ["ed25519"],
          verify: async (data, signature) => nodeVerify(null, data, key, signature),
        }),
        tolerance: 3600,
      },
      { method: spec.method, url: spec.url, headers: spec.headers },
    );
    ok = result === true;
    if (!ok) error = `verifyMessage returned ${result}`;
  }
} catch (e) {
  error = String(e && e.message ? e.message : e);
}
process.stdout.write(JSON.stringify({ ok, error }));
