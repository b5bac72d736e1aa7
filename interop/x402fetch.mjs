// The real @x402/fetch client, with a small Paybound scheme client
// registered through @x402/core's scheme registry, pays a route behind
// Paybound's Go x402.Middleware. Reads {url, jwk, keyid, mandate, network}
// on stdin; prints {status, body, paymentResponse}.
import crypto from 'node:crypto';
import { wrapFetchWithPayment, x402Client, decodePaymentResponseHeader } from '@x402/fetch';

const spec = JSON.parse(await new Response(process.stdin).text());
const key = crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: spec.jwk.x, d: spec.jwk.d }, format: 'jwk' });

// PayboundExactScheme signs Paybound's exact authorization (docs/x402.md):
// Ed25519 over one "name=value" line per field after a fixed label.
class PayboundExactScheme {
  scheme = 'exact';
  resource = '';
  async createPaymentPayload(x402Version, req) {
    const now = Math.floor(Date.now() / 1000);
    const authorization = {
      from: spec.keyid, mandate: spec.mandate, to: req.payTo, value: req.amount, asset: req.asset,
      resource: this.resource, validAfter: String(now - 5),
      validBefore: String(now + Math.min(req.maxTimeoutSeconds || 60, 3590)),
      nonce: crypto.randomBytes(32).toString('hex'),
    };
    const fields = [['scheme', req.scheme], ['network', req.network], ['from', authorization.from],
      ['mandate', authorization.mandate], ['to', authorization.to], ['value', authorization.value],
      ['asset', authorization.asset], ['resource', authorization.resource], ['validAfter', authorization.validAfter],
      ['validBefore', authorization.validBefore], ['nonce', authorization.nonce]];
    const input = 'x402-paybound-authorization/1\n' + fields.map(([k, v]) => `${k}=${v}\n`).join('');
    const signature = crypto.sign(null, Buffer.from(input), key).toString('base64url');
    return { x402Version, payload: { authorization, signature } };
  }
}

const scheme = new PayboundExactScheme();
const client = new x402Client().register(spec.network, scheme);
// The client's own cap: USD on this network, at most 5 cents (50000 atomic units) a payment.
client.setSpendControls({ allowedAssets: [{ network: spec.network, asset: 'USD', maxAmountPerPayment: '50000' }] });
client.onBeforePaymentCreation(async (ctx) => { scheme.resource = ctx.paymentRequired.resource.url; });
const pay = wrapFetchWithPayment(fetch, client);
const res = await pay(spec.url);
const header = res.headers.get('PAYMENT-RESPONSE');
console.log(JSON.stringify({ status: res.status, body: await res.text(), paymentResponse: header ? decodePaymentResponseHeader(header) : null }));
