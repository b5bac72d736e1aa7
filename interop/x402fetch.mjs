// The real @x402/fetch client, with a small Paybound scheme client
// registered through @x402/core's scheme registry, pays a route behind
// Paybound's Go x402.Middleware. Reads {url, jwk, keyid, mandate, network}
// on stdin; prints {status, body, paymentResponse}.
import { PayboundExactScheme } from './payboundscheme.mjs';
import { wrapFetchWithPayment, x402Client, decodePaymentResponseHeader } from '@x402/fetch';

const spec = JSON.parse(await new Response(process.stdin).text());
const scheme = new PayboundExactScheme(spec);
const client = new x402Client().register(spec.network, scheme);
// The client's own cap: USD on this network, at most 5 cents (50000 atomic units) a payment.
client.setSpendControls({ allowedAssets: [{ network: spec.network, asset: 'USD', maxAmountPerPayment: '50000' }] });
client.onBeforePaymentCreation(async (ctx) => { scheme.resource = ctx.paymentRequired.resource.url; });
const pay = wrapFetchWithPayment(fetch, client);
const res = await pay(spec.url);
const header = res.headers.get('PAYMENT-RESPONSE');
console.log(JSON.stringify({ status: res.status, body: await res.text(), paymentResponse: header ? decodePaymentResponseHeader(header) : null }));
