// The real resource-server side of @x402/core (x402ResourceServer with an
// HTTPFacilitatorClient), configured with Paybound as its facilitator,
// behind a small node:http server: Paybound's Go x402.Transport pays it.
// Reads {facilitator, network, payTo, amount, asset} as the first line of
// stdin, prints {"url": ...} once listening, and serves until stdin closes.
import http from 'node:http';
import readline from 'node:readline';
import { x402ResourceServer, HTTPFacilitatorClient } from '@x402/core/server';
import { decodePaymentSignatureHeader, encodePaymentRequiredHeader, encodePaymentResponseHeader } from '@x402/core/http';

const rl = readline.createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const spec = JSON.parse((await lines.next()).value);

// PayboundExactServer: prices are already atomic amounts of an ISO 4217
// asset; nothing is added to the requirements.
class PayboundExactServer {
  scheme = 'exact';
  defaultAssetTransferMethod = 'default';
  paymentFlows = { default: { supported: ['authorization'], default: 'authorization' } };
  async parsePrice(price) { return { amount: String(price.amount), asset: price.asset }; }
  getAssetDecimals() { return 6; }
  async enhancePaymentRequirements(req) { return req; }
}

const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: spec.facilitator }))
  .register(spec.network, new PayboundExactServer());
await server.initialize();

const http402 = http.createServer(async (req, res) => {
  try {
    const resource = { url: `http://${req.headers.host}${req.url}`, description: 'a paid quote', mimeType: 'application/json' };
    const reqs = await server.buildPaymentRequirements({ scheme: 'exact', payTo: spec.payTo, network: spec.network,
      price: { amount: spec.amount, asset: spec.asset }, maxTimeoutSeconds: 60 });
    const header = req.headers['payment-signature'];
    if (!header) {
      const pr = await server.createPaymentRequiredResponse(reqs, resource, 'PAYMENT-SIGNATURE header is required');
      res.writeHead(402, { 'PAYMENT-REQUIRED': encodePaymentRequiredHeader(pr), 'Content-Type': 'application/json' });
      return res.end('{}');
    }
    const payload = decodePaymentSignatureHeader(header);
    const verified = await server.verifyPayment(payload, reqs[0]);
    if (!verified.isValid) {
      const pr = await server.createPaymentRequiredResponse(reqs, resource, verified.invalidReason);
      res.writeHead(402, { 'PAYMENT-REQUIRED': encodePaymentRequiredHeader(pr) });
      return res.end('{}');
    }
    const settled = await server.settlePayment(payload, reqs[0]);
    if (!settled.success) {
      res.writeHead(402, { 'PAYMENT-RESPONSE': encodePaymentResponseHeader(settled) });
      return res.end('{}');
    }
    res.writeHead(200, { 'PAYMENT-RESPONSE': encodePaymentResponseHeader(settled), 'Content-Type': 'application/json' });
    res.end('{"quote":"served by @x402/core"}');
  } catch (err) {
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(err && err.stack || err));
  }
});
http402.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ url: `http://127.0.0.1:${http402.address().port}` }));
});
for await (const _ of lines) { /* wait for stdin to close */ }
http402.close();
