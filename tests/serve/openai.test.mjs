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
