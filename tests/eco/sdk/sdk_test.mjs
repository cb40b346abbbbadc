// The official Ollama, OpenAI and Anthropic JavaScript SDKs, each call made twice: straight to
// the fake upstream and through tokentap. The SDK-visible results must be identical (the fake
// is deterministic, so any difference is tokentap's), an OpenAI stream without
// stream_options.include_usage must carry no usage chunk (tokentap asks upstream for usage and
// strips it), one with include_usage must carry it, and tokentap's /metrics must count the
// completion tokens the upstream reported.
//   node sdk_test.mjs DIRECT_URL PROXY_URL METRICS_URL
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const [directUrl, proxyUrl, metricsUrl] = process.argv.slice(2);
if (!metricsUrl) {
  console.error('usage: node sdk_test.mjs DIRECT_URL PROXY_URL METRICS_URL');
  process.exit(2);
}

const completionTokens = 6;
const headers = { 'X-Fake-Tokens': String(completionTokens), 'X-Fake-Prompt-Tokens': '9' };
const model = 'sdk-model';
const messages = [{ role: 'user', content: 'Why is the sky blue?' }];

function clients(baseUrl) {
  return {
    ollama: new Ollama({ host: baseUrl, headers }),
    openai: new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: 'ollama', defaultHeaders: headers,
      maxRetries: 0 }),
    anthropic: new Anthropic({ baseURL: baseUrl, apiKey: 'ollama', defaultHeaders: headers,
      maxRetries: 0 }),
  };
}

async function collect(iterable) {
  const parts = [];
  for await (const part of iterable) parts.push(part);
  return parts;
}

// Plain data, without SDK classes or non-enumerable helpers, so deepEqual compares content.
const plain = (value) => JSON.parse(JSON.stringify(value));

// Each case: name, call(clients) -> result, and optionally check(result, proxied) and
// completion(result): the completion tokens the upstream reported for this call.
const cases = [
  { name: 'ollama generate', call: (c) => c.ollama.generate({ model, prompt: 'hi', stream: false }),
    completion: (r) => r.eval_count },
  { name: 'ollama generate stream',
    call: async (c) => collect(await c.ollama.generate({ model, prompt: 'hi', stream: true })),
    completion: (r) => r.at(-1).eval_count },
  { name: 'ollama chat', call: (c) => c.ollama.chat({ model, messages, stream: false }),
    completion: (r) => r.eval_count },
  { name: 'ollama chat stream',
    call: async (c) => collect(await c.ollama.chat({ model, messages, stream: true })),
    completion: (r) => r.at(-1).eval_count },
  { name: 'ollama embed', call: (c) => c.ollama.embed({ model, input: ['a', 'b'] }),
    check: (r) => assert.equal(r.embeddings.length, 2) },
  { name: 'ollama embeddings', call: (c) => c.ollama.embeddings({ model, prompt: 'a' }),
    check: (r) => assert.ok(r.embedding.length > 0) },
  { name: 'openai chat', call: (c) => c.openai.chat.completions.create({ model, messages }),
    completion: (r) => r.usage.completion_tokens },
  { name: 'openai chat stream without include_usage',
    call: async (c) => collect(await c.openai.chat.completions.create({ model, messages,
      stream: true })),
    check: (r) => {
      assert.ok(r.length >= completionTokens, 'one chunk per token');
      for (const chunk of r) assert.ok(chunk.usage == null, 'a usage chunk leaked to the client');
      assert.ok(r.every((chunk) => chunk.choices.length === 1), 'a chunk without choices');
    },
    // Not visible to the client, but tokentap must still count it.
    completion: () => completionTokens },
  { name: 'openai chat stream with include_usage',
    call: async (c) => collect(await c.openai.chat.completions.create({ model, messages,
      stream: true, stream_options: { include_usage: true } })),
    check: (r) => assert.equal(r.at(-1).usage.completion_tokens, completionTokens),
    completion: (r) => r.at(-1).usage.completion_tokens },
  { name: 'openai completions', call: (c) => c.openai.completions.create({ model, prompt: 'hi' }),
    completion: (r) => r.usage.completion_tokens },
  { name: 'openai completions stream',
    call: async (c) => collect(await c.openai.completions.create({ model, prompt: 'hi',
      stream: true })),
    check: (r) => { for (const chunk of r) assert.ok(chunk.usage == null, 'usage leaked'); },
    completion: () => completionTokens },
  { name: 'openai embeddings',
    call: (c) => c.openai.embeddings.create({ model, input: ['a', 'b'] }),
    check: (r) => assert.equal(r.data.length, 2) },
  { name: 'anthropic messages',
    call: (c) => c.anthropic.messages.create({ model, max_tokens: 64, messages }),
    completion: (r) => r.usage.output_tokens },
  { name: 'anthropic messages stream',
    call: async (c) => collect(await c.anthropic.messages.create({ model, max_tokens: 64,
      messages, stream: true })),
    completion: (r) => r.find((e) => e.type === 'message_delta').usage.output_tokens },
  { name: 'anthropic messages.stream().finalMessage()',
    call: (c) => c.anthropic.messages.stream({ model, max_tokens: 64, messages }).finalMessage(),
    completion: (r) => r.usage.output_tokens },
];

async function completionTokensOnMetrics() {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('tokentap_completion_tokens_total{')) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

const direct = clients(directUrl);
const proxied = clients(proxyUrl);
const before = await completionTokensOnMetrics();
let expected = 0;
let failures = 0;
for (const c of cases) {
  try {
    const want = plain(await c.call(direct));
    const got = plain(await c.call(proxied));
    assert.deepEqual(got, want, 'differs through tokentap');
    if (c.check) c.check(got);
    if (c.completion) {
      const tokens = c.completion(got);
      assert.equal(tokens, completionTokens, 'completion tokens the SDK saw');
      expected += tokens;
    }
    console.log(`ok: ${c.name}`);
  } catch (err) {
    failures++;
    console.log(`FAIL: ${c.name}: ${err.stack || err}`);
  }
}

const counted = (await completionTokensOnMetrics()) - before;
if (counted !== expected) {
  failures++;
  console.log(`FAIL: tokentap counted ${counted} completion tokens, upstream reported ${expected}`);
} else {
  console.log(`ok: tokentap counted ${counted} completion tokens`);
}
process.exit(failures === 0 ? 0 : 1);
