// Calls an OpenAI-compatible API through Paybound's metering gateway with
// the official openai npm client: a chat completion, a streamed one, a
// response and an embedding with the key in OPENAI_API_KEY, then a chat
// completion with BROKE_KEY, a customer out of credit, whose 402 the
// client must surface as an APIError it can read. Prints one JSON object.
import OpenAI from "openai";

const base = process.env.GATEWAY_URL + "/v1";
const client = new OpenAI({ baseURL: base, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
const out = {};

const chat = await client.chat.completions.create({
  model: "fake-1", max_tokens: 50, messages: [{ role: "user", content: "say 5" }],
});
out.chat = { content: chat.choices[0].message.content, completion_tokens: chat.usage.completion_tokens };

const stream = await client.chat.completions.create({
  model: "fake-1", max_tokens: 50, stream: true, messages: [{ role: "user", content: "say 6" }],
});
let chunks = 0, text = "";
for await (const c of stream) {
  for (const ch of c.choices) {
    if (ch.delta?.content) { chunks++; text += ch.delta.content; }
  }
}
out.stream = { chunks, text };

const resp = await client.responses.create({ model: "fake-1", input: "say 3", max_output_tokens: 20 });
out.responses = { output_text: resp.output_text, output_tokens: resp.usage.output_tokens };

const emb = await client.embeddings.create({ model: "fake-embed", input: "say 1", encoding_format: "float" });
out.embeddings = { dims: emb.data[0].embedding.length, prompt_tokens: emb.usage.prompt_tokens };

const broke = new OpenAI({ baseURL: base, apiKey: process.env.BROKE_KEY, maxRetries: 0 });
try {
  await broke.chat.completions.create({ model: "fake-1", max_tokens: 50, messages: [{ role: "user", content: "say 5" }] });
  out.broke = { error: null };
} catch (e) {
  out.broke = { api_error: e instanceof OpenAI.APIError, status: e.status, code: e.code, type: e.type, message: e.message };
}
console.log(JSON.stringify(out));
