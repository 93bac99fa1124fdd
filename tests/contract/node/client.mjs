// An application written in JavaScript with the official OpenAI Node.js SDK, pointed at Quorum
// by its base URL alone. Each scenario calls the SDK as its documentation shows and records
// what the application would see; the Python test reads the JSON this prints and checks it
// against Quorum's database. Nothing here knows Quorum beyond the base URL and a team key.
//
//   QUORUM_BASE_URL=http://127.0.0.1:PORT/v1 QUORUM_KEYS='{"caller": "...", ...}' \
//   QUORUM_SCENARIOS=models,chat node client.mjs

import OpenAI from "openai";

const baseURL = process.env.QUORUM_BASE_URL;
const keys = JSON.parse(process.env.QUORUM_KEYS);
const MODEL = "gpt-4o-mini";
const HELLO = [{ role: "user", content: "What are your opening hours?" }];

// Every request the SDK sends, counted through its own `fetch` option: retries included.
let sent = 0;
const countingFetch = (url, init) => {
  sent += 1;
  return fetch(url, init);
};

function client(key = keys.caller, options = {}) {
  return new OpenAI({ baseURL, apiKey: key, fetch: countingFetch, ...options });
}

// What the application sees of a failed call: the SDK's error class, status and OpenAI error body.
async function failure(call) {
  const before = sent;
  try {
    await call();
  } catch (error) {
    return {
      class: error.constructor.name,
      status: error.status ?? null,
      code: error.code ?? null,
      type: error.type ?? null,
      param: error.param ?? null,
      requestId: error.requestID ?? error.headers?.get?.("x-request-id") ?? null,
      shouldRetry: error.headers?.get?.("x-should-retry") ?? null,
      requests: sent - before,
    };
  }
  return { class: null, requests: sent - before };
}

const scenarios = {
  async models() {
    const names = [];
    for await (const model of client().models.list()) names.push(model.id);
    const one = await client().models.retrieve(MODEL);
    const missing = await failure(() => client().models.retrieve("no-such-model"));
    return { names, retrieved: one.id, missing };
  },

  async chat() {
    const { data, response } = await client().chat.completions.create({ model: MODEL, messages: HELLO }).withResponse();
    return {
      requestId: response.headers.get("x-request-id"),
      sdkRequestId: data._request_id ?? null,
      content: data.choices[0].message.content,
      finishReason: data.choices[0].finish_reason,
      usage: data.usage,
    };
  },

  async chatStream() {
    const { data: stream, response } = await client()
      .chat.completions.create({ model: MODEL, messages: HELLO, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    let text = "";
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    return { requestId: response.headers.get("x-request-id"), text, usage, chunks };
  },

  // The SDK's stream helper, which rebuilds the whole message from the deltas.
  async chatStreamHelper() {
    const runner = client().chat.completions.stream({ model: MODEL, messages: HELLO, stream_options: { include_usage: true } });
    const done = await runner.finalChatCompletion();
    return { content: done.choices[0].message.content, usage: done.usage ?? null };
  },

  async streamLeftMidway() {
    const long = [{ role: "user", content: "Tell me a long story about tea." }];
    const { data: stream, response } = await client()
      .chat.completions.create({ model: MODEL, messages: long, stream: true })
      .withResponse();
    let text = "";
    let deltas = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      deltas += 1;
      if (deltas >= 3) break; // `break` aborts the request: the application leaves
    }
    const whole = await client().chat.completions.create({ model: MODEL, messages: long });
    return {
      requestId: response.headers.get("x-request-id"),
      received: text,
      wholeText: whole.choices[0].message.content,
      wholeTokens: whole.usage.completion_tokens,
    };
  },

  async tools() {
    const tool = {
      type: "function",
      function: {
        name: "get_weather",
        description: "The current weather in a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      },
    };
    const messages = [{ role: "user", content: "What is the weather in Paris?" }];
    const first = await client().chat.completions.create({ model: MODEL, messages, tools: [tool] });
    const call = first.choices[0].message.tool_calls?.[0] ?? null;
    if (call === null) return { toolCall: null };
    const second = await client().chat.completions.create({
      model: MODEL,
      tools: [tool],
      messages: [
        ...messages,
        first.choices[0].message,
        { role: "tool", tool_call_id: call.id, content: JSON.stringify({ celsius: 18 }) },
      ],
    });
    return {
      toolCall: { name: call.function.name, arguments: JSON.parse(call.function.arguments) },
      afterTool: second.choices[0].message.content,
    };
  },

  async jsonSchema() {
    const schema = {
      type: "object",
      properties: { answer: { type: "string" }, confidence: { type: "number" } },
      required: ["answer", "confidence"],
      additionalProperties: false,
    };
    const reply = await client().chat.completions.create({
      model: MODEL,
      messages: HELLO,
      response_format: { type: "json_schema", json_schema: { name: "reply", schema, strict: true } },
    });
    const content = reply.choices[0].message.content;
    let parsed = null;
    try {
      parsed = JSON.parse(content);
    } catch {
      parsed = null;
    }
    return { content, parsed };
  },

  async responses() {
    const { data, response } = await client().responses.create({ model: MODEL, input: "What are your opening hours?" }).withResponse();
    return { requestId: response.headers.get("x-request-id"), id: data.id, outputText: data.output_text, usage: data.usage };
  },

  async responsesStream() {
    const stream = client().responses.stream({ model: MODEL, input: "What are your opening hours?" });
    const types = new Set();
    let deltas = "";
    for await (const event of stream) {
      types.add(event.type);
      if (event.type === "response.output_text.delta") deltas += event.delta;
    }
    const done = await stream.finalResponse();
    return { types: [...types], deltas, outputText: done.output_text, usage: done.usage };
  },

  async storedResponse() {
    const made = await client().responses.create({ model: MODEL, input: "What are your opening hours?" });
    const again = await client().responses.retrieve(made.id);
    const otherTeam = await failure(() => client(keys.legal).responses.retrieve(made.id));
    return { id: made.id, retrievedId: again.id, sameText: again.output_text === made.output_text, otherTeam };
  },

  // The Node SDK asks for base64 embeddings unless told otherwise, and decodes them itself.
  async embeddings() {
    const reply = await client().embeddings.create({ model: "text-embedding-3-small", input: ["opening hours", "refunds"] });
    const floats = await client().embeddings.create({
      model: "text-embedding-3-small",
      input: "opening hours",
      encoding_format: "float",
    });
    return {
      count: reply.data.length,
      dimensions: reply.data.map((item) => item.embedding.length),
      allNumbers: reply.data.every((item) => item.embedding.every((x) => typeof x === "number" && Number.isFinite(x))),
      sameAsFloat: reply.data[0].embedding.every((x, i) => Math.abs(x - floats.data[0].embedding[i]) < 1e-6),
      usage: reply.usage,
    };
  },

  async moderations() {
    const reply = await client().moderations.create({ input: ["I will kill you", "the weather is lovely"] });
    return { flagged: reply.results.map((item) => item.flagged), model: reply.model };
  },

  async errors() {
    return {
      wrongKey: await failure(() => client("sk-quorum-not-a-key").chat.completions.create({ model: MODEL, messages: HELLO })),
      notAllowed: await failure(() => client(keys.legal).chat.completions.create({ model: "gpt-4o", messages: HELLO })),
      budget: await failure(() => client(keys.data).chat.completions.create({ model: MODEL, messages: HELLO })),
      badRequest: await failure(() => client().chat.completions.create({ model: MODEL, messages: [{ role: "user" }] })),
      secret: await failure(() =>
        client().chat.completions.create({
          model: MODEL,
          messages: [{ role: "user", content: "Deploy with AKIAIOSFODNN7EXAMPLE and the secret key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }],
        }),
      ),
    };
  },
};

const names = (process.env.QUORUM_SCENARIOS ?? Object.keys(scenarios).join(",")).split(",");
const results = {};
for (const name of names) {
  try {
    results[name] = await scenarios[name]();
  } catch (error) {
    // An unexpected failure is a result too: the test names the scenario and shows it.
    results[name] = { unexpected: `${error.constructor.name}: ${error.message}`, status: error.status ?? null };
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
