// resources/subscribe from the TypeScript SDK client (@modelcontextprotocol/client 2.x, legacy era),
// driven by tests/test_subscriptions.py. The same scenario as the Python tests there:
//
//   A subscribes to qmt://accounts/sim/events twice and to qmt://accounts/spare/events once
//   (B, when asked for, to each once); a resting buy on sim, then one on spare as the sentinel: once
//   the spare notification is in, every notification of an earlier event is too. A unsubscribes
//   from sim; again a sim order, then a spare sentinel.
//
// Prints one JSON line: how many sim events came before each sentinel (n1, n2, from the journal)
// and how many sim notifications each client had by then (a, b). pytest does the asserting.
//
// usage: node subscriptions.mjs stdio PYTHON QMT_MCP_HOME
//        node subscriptions.mjs http|sse URL CLIENTS   (CLIENTS 1 or 2; bearer token in env QMT_TOKEN)

import { createRequire } from 'node:module';

const require = createRequire(new URL('../../.ci/node/package.json', import.meta.url));
const { Client, StreamableHTTPClientTransport, SSEClientTransport } = require('@modelcontextprotocol/client');
const { StdioClientTransport, getDefaultEnvironment } = require('@modelcontextprotocol/client/stdio');

const SIM = 'qmt://accounts/sim/events';
const SPARE = 'qmt://accounts/spare/events';
const [transport, ...target] = process.argv.slice(2);

function fail(message) {
  console.error(message);
  process.exit(1);
}
setTimeout(() => fail('scenario did not finish in 90 s'), 90_000).unref();

function makeTransport() {
  if (transport === 'stdio') {
    const [python, home] = target;
    return new StdioClientTransport({
      command: python, args: ['-m', 'qmt_mcp', 'serve'], env: { ...getDefaultEnvironment(), QMT_MCP_HOME: home },
      stderr: 'inherit',
    });
  }
  const authProvider = { token: async () => process.env.QMT_TOKEN };
  if (transport === 'http') return new StreamableHTTPClientTransport(new URL(target[0]), { authProvider });
  if (transport === 'sse') return new SSEClientTransport(new URL(target[0]), { authProvider });
  return fail(`unknown transport ${transport}`);
}

/** A connected client that records every resources/updated URI in arrival order. */
async function connect(name) {
  const client = new Client({ name, version: '1.0.0' }, { capabilities: {} });
  const seen = [];
  let wake = () => {};
  client.setNotificationHandler('notifications/resources/updated', (n) => {
    seen.push(n.params.uri);
    wake();
  });
  await client.connect(makeTransport());
  const count = (uri) => seen.filter((u) => u === uri).length;
  const waitFor = async (uri, n) => {
    while (count(uri) < n) await new Promise((resolve) => { wake = resolve; });
  };
  return { client, count, waitFor };
}

async function tool(client, name, args) {
  const res = await client.callTool({ name, arguments: args });
  if (!res.structuredContent?.ok) fail(`${name}: ${JSON.stringify(res.structuredContent)}`);
  return res.structuredContent;
}

async function placeResting(client, account, cid) {
  const inst = await tool(client, 'get_instrument', { code: '600000.SH' });
  // At the day's lower limit: it rests (nothing trades below it), so it makes no later events.
  await tool(client, 'place_order', {
    account, code: '600000.SH', side: 'buy', volume: 100, price: inst.down_limit, client_order_id: cid,
  });
}

async function journal(client, account) {
  return (await tool(client, 'get_order_events', { account, limit: 1000 })).events;
}

/** Sim events before the sentinel's first event, and spare events before it. */
async function before(client, sentinelCid) {
  const spare = await journal(client, 'spare');
  const first = Math.min(...spare.filter((e) => e.client_order_id === sentinelCid).map((e) => e.seq));
  const sim = await journal(client, 'sim');
  return { sim: sim.filter((e) => e.seq < first).length, spare: spare.filter((e) => e.seq < first).length };
}

const a = await connect('qmt-test-a');
const b = transport !== 'stdio' && target[1] === '2' ? await connect('qmt-test-b') : null;
await a.client.subscribeResource({ uri: SIM });
await a.client.subscribeResource({ uri: SIM });
await a.client.subscribeResource({ uri: SPARE });
if (b) {
  await b.client.subscribeResource({ uri: SIM });
  await b.client.subscribeResource({ uri: SPARE });
}

await placeResting(a.client, 'sim', 'ts-a1');
await placeResting(a.client, 'spare', 'ts-s1');
const first = await before(a.client, 'ts-s1');
for (const c of [a, b].filter(Boolean)) await c.waitFor(SPARE, first.spare + 1);
const at1 = [a.count(SIM), b?.count(SIM)];

await a.client.unsubscribeResource({ uri: SIM });
await placeResting(a.client, 'sim', 'ts-a2');
await placeResting(a.client, 'spare', 'ts-s2');
const second = await before(a.client, 'ts-s2');
for (const c of [a, b].filter(Boolean)) await c.waitFor(SPARE, second.spare + 1);
const at2 = [a.count(SIM), b?.count(SIM)];

console.log(JSON.stringify({
  n1: first.sim, n2: second.sim, a: [at1[0], at2[0]], b: b ? [at1[1], at2[1]] : null,
}));
await a.client.close();
if (b) await b.client.close();
process.exit(0);
