// The reference TypeScript MCP client (@modelcontextprotocol/sdk) pays a
// paid tool of a Go seller (x402.PaidTool, x402 over MCP: x402's
// transports-v2/mcp.md). The payment payload is built by @x402/core's
// x402Client with the Paybound scheme client of payboundscheme.mjs.
// Reads {url, tool, jwk, keyid, mandate, network} on stdin; prints one
// JSON line: the unpaid refusal and the paid result.
import { PayboundExactScheme } from './payboundscheme.mjs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { x402Client } from '@x402/core/client';

const spec = JSON.parse(await new Response(process.stdin).text());
const scheme = new PayboundExactScheme(spec);
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
