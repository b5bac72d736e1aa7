// The reference TypeScript MCP client (@modelcontextprotocol/sdk) pays a
// paid tool of a Go seller (x402.PaidTool, x402 over MCP: x402's
// transports-v2/mcp.md). The payment payload is built by @x402/core's
// x402Client with a small Paybound scheme client (as x402fetch.mjs).
// Reads {url, tool, jwk, keyid, mandate, network} on stdin; prints one
// JSON line: the unpaid refusal and the paid result.
import crypto from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { x402Client } from '@x402/core/client';

const spec = JSON.parse(await new Response(process.stdin).text());
const key = crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: spec.jwk.x, d: spec.jwk.d }, format: 'jwk' });

// PayboundExactScheme signs Paybound's exact authorization (docs/x402.md).
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
const payer = new x402Client().register(spec.network, scheme);
payer.setSpendControls({ allowedAssets: [{ network: spec.network, asset: 'USD', maxAmountPerPayment: '50000' }] });
payer.onBeforePaymentCreation(async (ctx) => { scheme.resource = ctx.paymentRequired.resource.url; });

const client = new Client({ name: 'paybound-interop-x402', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(new URL(spec.url)));
const args = { city: 'Lyon' };
const unpaid = await client.callTool({ name: spec.tool, arguments: args });
// transports-v2/mcp.md: structuredContent is the PaymentRequired.
const required = unpaid.structuredContent;
const payment = await payer.createPaymentPayload(required);
const paid = await client.callTool({ name: spec.tool, arguments: args, _meta: { 'x402/payment': payment } });
console.log(JSON.stringify({
  unpaid: { isError: !!unpaid.isError, accepts: required?.accepts?.length ?? 0, resource: required?.resource?.url },
  paid: { isError: !!paid.isError, text: paid.content?.[0]?.text ?? '', receipt: paid._meta?.['x402/payment-response'] ?? null },
}));
await client.close();
