// Signs one HTTP request with a third-party RFC 9421 implementation and
// prints the headers to add, as JSON. Paybound's Go tests verify them.
//
// stdin:  {"lib": "web-bot-auth" | "http-message-signatures",
//          "method", "url", "headers": {name: value}, "jwk": {Ed25519 private JWK},
//          "keyid", "components": [...], "created": unix, "expires": unix, "nonce"}
// stdout: {"Signature-Input": "...", "Signature": "..."}
import { createPrivateKey, sign as nodeSign } from "node:crypto";
import { signatureHeaders } from "web-bot-auth";
import { Ed25519Signer } from "web-bot-auth/crypto";
import { httpbis } from "http-message-signatures";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const spec = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let out;
if (spec.lib === "web-bot-auth") {
  const signer = await Ed25519Signer.fromJWK(spec.jwk);
  signer.keyid = spec.keyid;
  const request = new Request(spec.url, { method: spec.method, headers: spec.headers });
  const h = await signatureHeaders(request, signer, {
    created: new Date(spec.created * 1000),
    expires: new Date(spec.expires * 1000),
    nonce: spec.nonce,
    components: spec.components,
  });
  out = { "Signature-Input": h["Signature-Input"], Signature: h["Signature"] };
} else if (spec.lib === "http-message-signatures") {
  const key = createPrivateKey({ key: spec.jwk, format: "jwk" });
  const signed = await httpbis.signMessage(
    {
      key: { id: spec.keyid, alg: "ed25519", sign: async (data) => nodeSign(null, data, key) },
      name: "sig1",
      fields: spec.components,
      params: ["created", "expires", "keyid", "alg", "nonce", "tag"],
      paramValues: {
        created: new Date(spec.created * 1000),
        expires: new Date(spec.expires * 1000),
        nonce: spec.nonce,
        tag: "web-bot-auth",
      },
    },
    { method: spec.method, url: spec.url, headers: { ...spec.headers } },
  );
  const get = (name) => signed.headers[name] ?? signed.headers[name.toLowerCase()];
  out = { "Signature-Input": String(get("Signature-Input")), Signature: String(get("Signature")) };
} else {
  throw new Error(`unknown lib ${spec.lib}`);
}
process.stdout.write(JSON.stringify(out));
