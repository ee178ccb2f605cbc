// The official `ollama` JS client sees the same results through warmline as it
// does talking to ollama-sim directly.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { both, collect, errorOf, scrub, startTopology } from './harness.mjs';

const CHAT_MODEL = 'llama3.2:latest';
const THINKING_MODEL = 'qwen3:0.6b';
const EMBED_MODEL = 'nomic-embed-text:latest';
const UNKNOWN = 'no-such-model:latest';
const MESSAGES = [{ role: 'user', content: 'Why is the sky blue? One sentence.' }];
const DETERMINISTIC = { temperature: 0, seed: 42 };

let topology;
before(async () => {
  topology = await startTopology();
});
after(async () => {
  const dead = topology?.casualties() ?? [];
  await topology?.stop();
  assert.deepEqual(dead, [], 'a daemon died during the tests');
});

const byModel = (a, b) => a.model.localeCompare(b.model);

test('list', async () => {
  // Sorted by name: the daemon orders by modified_at, which differs between
  // the two simulators by however long apart they were started.
  const [direct, gateway] = await both(topology, async (c) => scrub((await c.list()).models).sort(byModel));
  assert.deepEqual(gateway, direct);
  const names = direct.map((m) => m.model);
  for (const m of [CHAT_MODEL, THINKING_MODEL, EMBED_MODEL]) assert.ok(names.includes(m), `${m} listed`);
});

for (const model of [CHAT_MODEL, THINKING_MODEL]) {
  test(`chat ${model}`, async () => {
    const [direct, gateway] = await both(topology, async (c) =>
      scrub(await c.chat({ model, messages: MESSAGES, options: DETERMINISTIC, stream: false })),
    );
    assert.deepEqual(gateway, direct);
    assert.equal(direct.model, model);
    assert.equal(direct.done_reason, 'stop');
    assert.ok(direct.message.content);
  });

  test(`chat ${model} stream`, async () => {
    const [direct, gateway] = await both(topology, async (c) =>
      collect(await c.chat({ model, messages: MESSAGES, options: DETERMINISTIC, stream: true })),
    );
    // Chunk for chunk: same pieces, same order, same final chunk.
    assert.deepEqual(gateway, direct);
    // Many small chunks: any re-chunking or buffering bug shows up here.
    assert.ok(direct.length > 50, 'a real stream, not one object');
    assert.equal(direct.at(-1).done, true);
    assert.equal(direct.at(-1).done_reason, 'stop');
    assert.ok(direct.map((p) => p.message.content).join(''));
  });
}

test('generate', async () => {
  const request = { model: CHAT_MODEL, prompt: 'Write a haiku about a warm line.', options: DETERMINISTIC };
  const [direct, gateway] = await both(topology, async (c) => scrub(await c.generate({ ...request, stream: false })));
  assert.deepEqual(gateway, direct);
  assert.equal(direct.model, CHAT_MODEL);
  assert.equal(direct.done_reason, 'stop');
  assert.ok(direct.response);

  const [directParts, gatewayParts] = await both(topology, async (c) =>
    collect(await c.generate({ ...request, stream: true })),
  );
  assert.deepEqual(gatewayParts, directParts);
  assert.ok(directParts.length > 50);
  assert.equal(directParts.map((p) => p.response).join(''), direct.response);
});

test('embed', async () => {
  const [direct, gateway] = await both(topology, async (c) =>
    scrub(await c.embed({ model: EMBED_MODEL, input: ['The sky is blue.', 'Warm models answer fast.'] })),
  );
  // Exact number equality: the gateway must not re-encode floats.
  assert.deepEqual(gateway, direct);
  assert.equal(direct.model, EMBED_MODEL);
  assert.equal(direct.embeddings.length, 2);
  assert.ok(direct.embeddings.every((v) => v.length > 0));
});

test('ps', async () => {
  // Load a model on both sides first, so the list is not trivially empty.
  await both(topology, (c) => c.generate({ model: CHAT_MODEL, prompt: 'hi', options: DETERMINISTIC }));
  const [direct, gateway] = await both(topology, async (c) => scrub((await c.ps()).models).sort(byModel));
  assert.deepEqual(gateway, direct);
  assert.ok(direct.some((m) => m.model === CHAT_MODEL));
});

test('show', async () => {
  const [direct, gateway] = await both(topology, async (c) => scrub(await c.show({ model: CHAT_MODEL })));
  assert.deepEqual(gateway, direct);
  assert.ok(direct.capabilities.includes('completion'));
});

const UNKNOWN_MODEL_CALLS = {
  chat: (c) => c.chat({ model: UNKNOWN, messages: MESSAGES, stream: false }),
  'chat stream': async (c) => collect(await c.chat({ model: UNKNOWN, messages: MESSAGES, stream: true })),
  generate: (c) => c.generate({ model: UNKNOWN, prompt: 'hi', stream: false }),
  embed: (c) => c.embed({ model: UNKNOWN, input: 'hi' }),
  show: (c) => c.show({ model: UNKNOWN }),
};

for (const [name, call] of Object.entries(UNKNOWN_MODEL_CALLS)) {
  test(`unknown model: ${name}`, async () => {
    const [direct, gateway] = await both(topology, (c) => errorOf(call(c)));
    assert.deepEqual(gateway, direct);
    assert.equal(direct.status, 404);
    assert.match(direct.error, /no-such-model.*not found/);
  });
}
