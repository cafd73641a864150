// The official openai client against rsr-serve (run by client.sh): what an application written
// for OpenAI's API gets from it. Each text is compared with rsr-run's for the same prompt and seed;
// structured output's replies are validated with ajv (and ajv-formats), apart from rsr-serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const client = new OpenAI({ baseURL: process.env.RSR_URL + '/v1', apiKey: 'unused', maxRetries: 0 });
const full = new OpenAI({ baseURL: process.env.RSR_FULL_URL + '/v1', apiKey: 'unused', maxRetries: 0 });

// What rsr-run prints after the prompt, without its final newline.
function solo(prompt, n, temp, seed) {
  const out = execFileSync(process.env.RSR_RUN, [process.env.RSR_MODEL, '-p', prompt, '-n', String(n), '--temp',
                                                 String(temp), '--seed', String(seed), '--no-echo'],
                           { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  return out.endsWith('\n') ? out.slice(0, -1) : out;
}

test('the trained model chats: 200, a reply that ends its turn', { skip: !process.env.RSR_KJV_URL }, async () => {
  const kjv = new OpenAI({ baseURL: process.env.RSR_KJV_URL + '/v1', apiKey: 'unused', maxRetries: 0 });
  const r = await kjv.chat.completions.create({
    model: 'kjv-tiny', max_tokens: 120, temperature: 0, repeat_penalty: 1.2, // greedy alone loops, as small models do
    messages: [{ role: 'user', content: 'And God said, Let there be light: and there was light.' }] });
  const text = r.choices[0].message.content;
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(/[A-Za-z]{3}/.test(text), `a reply in words: ${JSON.stringify(text)}`);
  assert.ok(!text.includes('<|'), `no turn markers in the reply: ${JSON.stringify(text)}`);
  assert.equal(r.choices[0].finish_reason, 'stop', `the model ends its turn: ${JSON.stringify(text)}`);
});

test('models lists the served model', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['small']);
});

test('completions: the text rsr-run gives, with usage', async () => {
  const r = await client.completions.create({ model: 'small', prompt: 'Once upon a time', max_tokens: 12,
                                              temperature: 40, seed: 11 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, solo('Once upon a time', 12, 40, 11));
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
});

test('completions streamed: the same text in pieces', async () => {
  const stream = await client.completions.create({ model: 'small', prompt: 'Once upon a time', max_tokens: 12,
                                                   temperature: 40, seed: 11, stream: true });
  let text = '', last;
  for await (const chunk of stream) text += chunk.choices[0].text, last = chunk;
  assert.equal(text, solo('Once upon a time', 12, 40, 11));
  assert.equal(last.choices[0].finish_reason, 'length');
});

test('chat completions, whole and streamed', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }];
  const r = await client.chat.completions.create({ model: 'small', messages, max_tokens: 10, temperature: 40,
                                                   seed: 5 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.usage.completion_tokens <= 10 && r.usage.prompt_tokens > 0, JSON.stringify(r.usage));
  const stream = await client.chat.completions.create({ model: 'small', messages, max_tokens: 10, temperature: 40,
                                                        seed: 5, stream: true });
  let text = '', roles = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.choices[0].delta.role) roles++;
    text += chunk.choices[0].delta.content ?? '';
  }
  assert.equal(roles, 1);
  assert.equal(text, r.choices[0].message.content);
});

test('a bad request is a BadRequestError naming the field', async () => {
  await assert.rejects(client.completions.create({ model: 'small', prompt: 'hi', top_p: 3 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, e.constructor.name);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'top_p');
    assert.match(e.message, /'top_p' is 3; it must be in \[0, 1\]/);
    return true;
  });
  await assert.rejects(
    client.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:' } }] }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages' && /text parts only/.test(e.message));
});

test('another model name, the developer role and content parts are served as llama-server serves them', async () => {
  const r = await client.chat.completions.create({
    model: 'gpt-4o', max_tokens: 2, temperature: 0,
    messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
  });
  assert.equal(r.model, 'small');
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('a full server is a 503 the client reports as such', async () => {
  const long = full.completions.create({ model: 'small', prompt: 'hi', max_tokens: 3000, temperature: 0 });
  await new Promise((r) => setTimeout(r, 300));
  await assert.rejects(full.completions.create({ model: 'small', prompt: 'hi', max_tokens: 2 }), (e) => {
    assert.ok(e instanceof OpenAI.InternalServerError || e instanceof OpenAI.APIError, e.constructor.name);
    assert.equal(e.status, 503);
    assert.equal(e.headers.get ? e.headers.get('retry-after') : e.headers['retry-after'], '1');
    return true;
  });
  const done = await long;
  assert.equal(done.choices[0].finish_reason, 'length');
});

// What Pydantic writes for a model with a nested model ($ref), an Optional field (anyOf with null),
// patterns, an integer range, an enum, a list and formats.
const person = {
  $defs: {
    Address: {
      properties: { city: { maxLength: 12, title: 'City', type: 'string' },
                    zip: { pattern: '^[0-9]{5}$', title: 'Zip', type: 'string' } },
      required: ['city', 'zip'], title: 'Address', type: 'object',
    },
    Color: { enum: ['red', 'green', 'blue'], title: 'Color', type: 'string' },
  },
  properties: {
    name: { maxLength: 10, title: 'Name', type: 'string' },
    age: { maximum: 120, minimum: 0, title: 'Age', type: 'integer' },
    nickname: { anyOf: [{ maxLength: 8, type: 'string' }, { type: 'null' }], default: null, title: 'Nickname' },
    address: { $ref: '#/$defs/Address' },
    friend: { anyOf: [{ $ref: '#/$defs/Address' }, { type: 'null' }], default: null },
    color: { $ref: '#/$defs/Color' },
    code: { pattern: '^[A-Z]{2}-[0-9]{2,4}$', title: 'Code', type: 'string' },
    tags: { items: { maxLength: 5, type: 'string' }, maxItems: 3, title: 'Tags', type: 'array' },
    born: { format: 'date', title: 'Born', type: 'string' },
    id: { format: 'uuid', title: 'Id', type: 'string' },
  },
  required: ['name', 'age', 'address', 'color', 'code', 'born', 'id'],
  title: 'Person', type: 'object',
};

test('structured output: 20 replies to a Pydantic-style schema at temperature 1 validate with ajv', async () => {
  const ajv = new Ajv2020({ allErrors: true });
  addFormats(ajv);
  const validate = ajv.compile(person);
  const replies = [];
  for (let seed = 0; seed < 20; seed += 2) { // two at a time: the server's slots
    replies.push(...await Promise.all([seed, seed + 1].map((s) => client.chat.completions.create({
      model: 'small', messages: [{ role: 'user', content: `Person ${s}, as JSON.` }], max_tokens: 400, temperature: 1,
      seed: s, response_format: { type: 'json_schema', json_schema: { name: 'person', schema: person } },
    }))));
  }
  const texts = replies.map((r) => r.choices[0].message.content);
  replies.forEach((r, i) => {
    assert.equal(r.choices[0].finish_reason, 'stop', texts[i]);
    const v = JSON.parse(texts[i]);
    assert.ok(validate(v), `${texts[i]}: ${ajv.errorsText(validate.errors)}`);
  });
  assert.ok(new Set(texts).size >= 15, 'the seeds give different replies');
  // a schema neither way serves is a 400 naming the keyword
  await assert.rejects(client.chat.completions.create({
    model: 'small', messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'object', not: {} } } },
  }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format' && /'not' is not served/.test(e.message));
});

// Tool calls with the published Qwen3 and Llama 3.1 templates (client.sh serves the model with each):
// a round trip (two tools, a call, its answer as a tool message, a final reply), whole and
// streamed; tool_choice "required" at temperature 1, every call validated with ajv against its
// function's schema.
const weather = { type: 'object', properties: { city: { type: 'string', maxLength: 24 },
                                                unit: { enum: ['celsius', 'fahrenheit'] } },
                  required: ['city', 'unit'], additionalProperties: false };
const adder = { type: 'object', properties: { a: { type: 'integer', minimum: 0, maximum: 1000 },
                                              b: { type: 'integer', minimum: 0, maximum: 1000 } },
                required: ['a', 'b'], additionalProperties: false };
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: weather } },
  { type: 'function', function: { name: 'add', description: 'The sum of two numbers', parameters: adder } },
];
const schemas = { get_weather: weather, add: adder };

for (const [family, url] of [['Qwen3', process.env.RSR_QWEN3_URL], ['Llama 3.1', process.env.RSR_LLAMA31_URL]]) {
  const api = url ? new OpenAI({ baseURL: url + '/v1', apiKey: 'unused', maxRetries: 0 }) : null;
  const ajv = new Ajv2020({ allErrors: true });
  const check = (call) => {
    assert.equal(call.type, 'function');
    assert.ok(call.id, 'a call has an id');
    const validate = ajv.compile(schemas[call.function.name]);
    const args = JSON.parse(call.function.arguments);
    assert.ok(validate(args), `${call.function.arguments}: ${ajv.errorsText(validate.errors)}`);
  };
  const ask = [{ role: 'user', content: 'What is the weather in Paris? And what is 2 + 3?' }];
  const opts = { skip: !api && 'the published templates are not here (tokenizer.jinja.fetch)' };

  test(`tools with ${family}'s template: a call, its answer, a final reply; whole and streamed`, opts, async () => {
    const first = await api.chat.completions.create({ model: 'small', messages: ask, tools, tool_choice: 'required',
                                                      parallel_tool_calls: false, temperature: 0.7, seed: 1,
                                                      max_tokens: 300 });
    const msg = first.choices[0].message;
    assert.equal(first.choices[0].finish_reason, 'tool_calls', JSON.stringify(msg));
    assert.equal(msg.tool_calls.length, 1);
    check(msg.tool_calls[0]);
    // the same request streamed: the same call, in OpenAI's deltas
    const stream = await api.chat.completions.create({ model: 'small', messages: ask, tools, tool_choice: 'required',
                                                       parallel_tool_calls: false, temperature: 0.7, seed: 1,
                                                       max_tokens: 300, stream: true });
    const calls = [];
    let finish;
    for await (const chunk of stream) {
      for (const d of chunk.choices[0]?.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: '', name: '', arguments: '' };
        if (d.id) calls[d.index].id = d.id;
        calls[d.index].name += d.function?.name ?? '';
        calls[d.index].arguments += d.function?.arguments ?? '';
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(calls.map((c) => [c.name, c.arguments]),
                     msg.tool_calls.map((c) => [c.function.name, c.function.arguments]));
    // the answer goes back as a tool message; the model replies (tool_choice none: text)
    const call = msg.tool_calls[0];
    const history = [...ask, { role: 'assistant', content: null, tool_calls: msg.tool_calls },
                     { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ result: 'sunny, 21' }) }];
    const prompt = await fetch(url + '/apply-template', { method: 'POST', body: JSON.stringify({ messages: history, tools }) });
    const rendered = (await prompt.json()).prompt;
    assert.ok(rendered.includes(call.function.name) && rendered.includes('sunny, 21'), rendered);
    const last = await api.chat.completions.create({ model: 'small', messages: history, tools, tool_choice: 'none',
                                                     temperature: 0, max_tokens: 8 });
    assert.equal(typeof last.choices[0].message.content, 'string');
    assert.equal(last.choices[0].message.tool_calls, undefined);
    assert.ok(['stop', 'length'].includes(last.choices[0].finish_reason));
  });

  test(`tools with ${family}'s template: 20 of 20 required calls at temperature 1 validate with ajv`, opts, async () => {
    for (let seed = 0; seed < 20; seed += 2) {
      const rs = await Promise.all([seed, seed + 1].map((s) => api.chat.completions.create({
        model: 'small', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false, temperature: 1,
        seed: s, max_tokens: 300 })));
      for (const r of rs) {
        assert.equal(r.choices[0].finish_reason, 'tool_calls', JSON.stringify(r.choices[0]));
        r.choices[0].message.tool_calls.forEach(check);
      }
    }
  });
}
