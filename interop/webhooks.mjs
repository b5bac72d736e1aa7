// Verifies Paybound's webhook deliveries with the standardwebhooks npm
// package (Standard Webhooks' reference library) and their v1a Ed25519
// signatures with Node's crypto. Reads from stdin
//   {"secrets": ["whsec_…"], "public_key": "whpk_…",
//    "deliveries": [{"headers": {…}, "body": "…"}]}
// and prints {"verified": N}; exits 1 on the first delivery that does not
// verify with every secret, or a tampered one that does.
import { Webhook } from "standardwebhooks";
import { createPublicKey, verify } from "node:crypto";

const input = JSON.parse(await new Promise((resolve) => {
  let s = "";
  process.stdin.on("data", (d) => (s += d));
  process.stdin.on("end", () => resolve(s));
}));

const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"),
  Buffer.from(input.public_key.replace(/^whpk_/, ""), "base64")]);
const pub = createPublicKey({ key: spki, format: "der", type: "spki" });

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

let n = 0;
for (const d of input.deliveries) {
  for (const secret of input.secrets) {
    const payload = new Webhook(secret).verify(d.body, d.headers);
    if (payload.id !== d.headers["webhook-id"]) fail(`payload id ${payload.id} != webhook-id ${d.headers["webhook-id"]}`);
    let tampered = false;
    try {
      new Webhook(secret).verify(d.body + " ", d.headers);
    } catch {
      tampered = true;
    }
    if (!tampered) fail("a tampered body verified");
  }
  const v1a = d.headers["webhook-signature"].split(" ").find((s) => s.startsWith("v1a,"));
  if (!v1a) fail("no v1a signature");
  const signed = Buffer.from(`${d.headers["webhook-id"]}.${d.headers["webhook-timestamp"]}.${d.body}`);
  if (!verify(null, signed, pub, Buffer.from(v1a.slice(4), "base64"))) fail("the v1a signature does not verify");
  n++;
}
console.log(JSON.stringify({ verified: n }));
