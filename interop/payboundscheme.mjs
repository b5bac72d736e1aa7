// Paybound's exact scheme for @x402/core's client (docs/x402.md): the
// agent signs its authorization with Ed25519 over one "name=value" line a
// field after a fixed label. Shared by x402fetch.mjs and mcpx402.mjs.
import crypto from 'node:crypto';

export class PayboundExactScheme {
  scheme = 'exact';
  resource = '';
  // spec: {jwk: {x, d}, keyid, mandate}.
  constructor(spec) {
    this.spec = spec;
    this.key = crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: spec.jwk.x, d: spec.jwk.d }, format: 'jwk' });
  }
  async createPaymentPayload(x402Version, req) {
    const now = Math.floor(Date.now() / 1000);
    const authorization = {
      from: this.spec.keyid, mandate: this.spec.mandate, to: req.payTo, value: req.amount, asset: req.asset,
      resource: this.resource, validAfter: String(now - 5),
      validBefore: String(now + Math.min(req.maxTimeoutSeconds || 60, 3590)),
      nonce: crypto.randomBytes(32).toString('hex'),
    };
    const fields = [['scheme', req.scheme], ['network', req.network], ['from', authorization.from],
      ['mandate', authorization.mandate], ['to', authorization.to], ['value', authorization.value],
      ['asset', authorization.asset], ['resource', authorization.resource], ['validAfter', authorization.validAfter],
      ['validBefore', authorization.validBefore], ['nonce', authorization.nonce]];
    const input = 'x402-paybound-authorization/1\n' + fields.map(([k, v]) => `${k}=${v}\n`).join('');
    const signature = crypto.sign(null, Buffer.from(input), this.key).toString('base64url');
    return { x402Version, payload: { authorization, signature } };
  }
}
