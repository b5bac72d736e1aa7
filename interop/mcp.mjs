// The reference TypeScript MCP client (@modelcontextprotocol/sdk) against
// Paybound's MCP server, over stdio (`paybound mcp`) or streamable HTTP
// (/mcp). Driven by cmd/paybound/mcp_interop_test.go: the spec arrives as
// one JSON line on stdin; the script prints one JSON line per step on
// stdout, and after {"step":"session"} it reads a vault token (a line) that
// the Go test delegated for the session.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import readline from "node:readline";

const rl = readline.createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const next = async () => (await lines.next()).value;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const spec = JSON.parse(await next());
const transport = spec.transport === "stdio"
  ? new StdioClientTransport({ command: spec.command, args: spec.args, env: { ...process.env, ...spec.env }, stderr: "inherit" })
  : new StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers: { Authorization: "Bearer " + spec.key } } });
const client = new Client({ name: "paybound-interop", version: "1.0.0" });
await client.connect(transport);
out({ step: "connected", protocol: client.getServerVersion()?.name });

const { tools } = await client.listTools();
out({ step: "tools", names: tools.map((t) => t.name), annotated: tools.every((t) => t.annotations && t.outputSchema) });

// callTool validates structuredContent against the tool's outputSchema
// when the result is not an error: a result that does not match throws.
const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args });
  return { isError: !!r.isError, structured: r.structuredContent, text: r.content?.[0]?.text ?? "" };
};
const pay = (amount, merchant, key) => call("pay", {
  merchant_id: merchant, amount, currency: "USD", description: "interop", mandate_id: spec.mandate_id,
  idempotency_key: key, provenance: { payee: "user", amount: "user" },
});
out({ step: "wallet", ...(await call("wallet_summary", {})) });
out({ step: "request", ...(await call("request_mandate", {
  description: "interop top-up", reason: "the interop test asks", currency: "USD", max_amount: 500, budget_amount: 2000,
  budget_period: "week", idempotency_key: spec.prefix + "-req",
})) });
out({ step: "pay", ...(await pay(300, spec.merchant_id, spec.prefix + "-1")) });
out({ step: "retry", ...(await pay(300, spec.merchant_id, spec.prefix + "-1")) });
out({ step: "decline", ...(await pay(300, spec.merchant2_id, spec.prefix + "-2")) });
out({ step: "conflict", ...(await pay(200, spec.merchant_id, spec.prefix + "-1")) });

const meta = (k) => ({ api_version: "2026-04-17", idempotency_key: spec.prefix + "-" + k, user_agent: "paybound-interop" });
const created = await call("create_checkout_session", {
  merchant_id: spec.merchant_id, meta: meta("cs"),
  payload: { currency: "usd", line_items: [{ id: spec.product_id }], capabilities: {} },
});
out({ step: "session", ...created });
const token = await next();
const completed = await call("complete_checkout_session", {
  merchant_id: spec.merchant_id, id: created.structured.id, meta: meta("done"),
  payload: { payment_data: { handler_id: "paybound_agent_card", instrument: { type: "card", credential: { type: "spt", token } } } },
});
out({ step: "completed", ...completed });
const prompt = await client.getPrompt({ name: "pay_safely" });
const res = await client.readResource({ uri: "paybound://mandates" });
out({ step: "extras", prompt: prompt.messages.length, mandates: JSON.parse(res.contents[0].text).data.length });
await client.close();
process.exit(0);
