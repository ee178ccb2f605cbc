// Process fixtures and comparison helpers for the JS client-compatibility tests.
//
// Topology, as in the Python suite: two identical ollama-sim daemons, one
// reached directly and one behind warmline, so each call can be made once per
// endpoint (direct first) and the results compared. Everything listens on port
// 0; real addresses come from the ready lines, read with a bounded wait.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Ollama } from 'ollama';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN_DIR = process.env.WARMLINE_BIN_DIR || join(REPO, 'target', 'debug');
const READY_TIMEOUT_MS = Number(process.env.WARMLINE_READY_TIMEOUT || 30) * 1000;
const STOP_GRACE_MS = 5000;

const SIM_READY = /msg="Listening on (?<addr>[^ ]+:\d+) \(version [^)]*\)"/;
const WARMLINE_READY = /^warmline listening on (?<url>http:\/\/\S+:\d+)\s*$/;

// setpriv makes the child get SIGTERM if this test process dies before `after`
// runs (it execs in place, so the pid is the daemon's own).
const HAVE_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

/** Every daemon this process started and has not yet seen exit. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Start `argv` and resolve with the match of `ready` on a line of `stream`
 * ('stdout' | 'stderr'); reject if it exits or stays silent too long.
 */
async function startDaemon(name, argv, env, stream, ready) {
  if (!existsSync(argv[0])) {
    throw new Error(
      `${name}: binary ${argv[0]} not found; build it with ` +
        '`cargo build -p ollama-sim -p warmline-cli` or set WARMLINE_BIN_DIR',
    );
  }
  const [cmd, ...args] = HAVE_SETPRIV ? ['setpriv', '--pdeathsig', 'TERM', '--', ...argv] : argv;
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const tail = [];
  const daemon = { name, child, output: () => `--- ${name} last output ---\n${tail.join('\n')}` };
  child.on('exit', () => live.delete(child));

  const match = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${name} not ready after ${READY_TIMEOUT_MS} ms\n${daemon.output()}`));
    }, READY_TIMEOUT_MS);
    const onExit = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before its ready line\n${daemon.output()}`));
    };
    child.once('exit', onExit);
    for (const streamName of ['stdout', 'stderr']) {
      // Keep draining after readiness: a full pipe would block the daemon.
      createInterface({ input: child[streamName] }).on('line', (line) => {
        tail.push(`[${streamName}] ${line}`);
        if (tail.length > 200) tail.shift();
        const m = streamName === stream && ready.exec(line);
        if (m) {
          clearTimeout(timer);
          child.off('exit', onExit);
          resolvePromise(m);
        }
      });
    }
  }).catch(async (err) => {
    await stopDaemon(daemon);
    throw err;
  });
  return { ...daemon, match };
}

async function stopDaemon({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * Start sim (direct), sim (upstream) and warmline in front of the latter.
 * Returns { direct, gateway, upstream, stop }.
 */
export async function startTopology() {
  const workdir = mkdtempSync(join(tmpdir(), 'warmline-clients-js-'));
  const daemons = [];
  const stop = async () => {
    // Gateway first, so it never sees its upstream vanish mid-request.
    for (const d of daemons.reverse()) await stopDaemon(d);
    rmSync(workdir, { recursive: true, force: true });
  };
  const simEnv = (name) => {
    const home = join(workdir, name);
    mkdirSync(home);
    return {
      // The simulator reads OLLAMA_* and SIM_* (fault rates, delays, model
      // set): none may leak in from the caller's environment.
      ...Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith('OLLAMA_') && !k.startsWith('SIM_')),
      ),
      OLLAMA_HOST: '127.0.0.1:0',
      SIM_QUIET: '1',
      // Replies long enough that streams have many chunks (default is 8).
      SIM_TOKENS: '200',
      HOME: home,
      OLLAMA_MODELS: join(home, 'models'),
    };
  };
  try {
    const sim = join(BIN_DIR, 'ollama-sim');
    const direct = await startDaemon('sim-direct', [sim, 'serve'], simEnv('sim-direct'), 'stderr', SIM_READY);
    daemons.push(direct);
    const upstream = await startDaemon('sim-upstream', [sim, 'serve'], simEnv('sim-upstream'), 'stderr', SIM_READY);
    daemons.push(upstream);
    const upstreamUrl = `http://${upstream.match.groups.addr}`;
    const gatewayHome = join(workdir, 'warmline');
    mkdirSync(gatewayHome);
    const gateway = await startDaemon(
      'warmline',
      [join(BIN_DIR, 'warmline'), 'serve', '--listen', '127.0.0.1:0', '--upstream', upstreamUrl],
      { ...process.env, HOME: gatewayHome },
      'stdout',
      WARMLINE_READY,
    );
    daemons.push(gateway);
    return {
      direct: `http://${direct.match.groups.addr}`,
      gateway: gateway.match.groups.url,
      upstream: upstreamUrl,
      /** Names of daemons that died while tests ran, with their output. */
      casualties: () => daemons.filter((d) => d.child.exitCode !== null).map((d) => d.output()),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Same request on both endpoints, direct first so the sims share a history. */
export async function both(topology, call) {
  const direct = await call(new Ollama({ host: topology.direct }));
  const gateway = await call(new Ollama({ host: topology.gateway }));
  return [direct, gateway];
}

// Clock readings and durations differ between any two runs; nothing else may.
const VOLATILE = new Set([
  'created_at',
  'modified_at',
  'expires_at',
  'total_duration',
  'load_duration',
  'prompt_eval_duration',
  'eval_duration',
]);

/** Plain JSON data without volatile fields (the JS client turns times into Dates). */
export function scrub(value) {
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !VOLATILE.has(k))
        .map(([k, v]) => [k, scrub(v)]),
    );
  }
  return value;
}

/** Drain an async iterator into an array of scrubbed parts. */
export async function collect(iterator) {
  const parts = [];
  for await (const part of iterator) parts.push(scrub(part));
  return parts;
}

/** The error `promise` rejects with; fails if it resolves. */
export async function errorOf(promise) {
  try {
    const value = await promise;
    throw new Error(`expected an error, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err.name !== 'ResponseError') throw err;
    return { status: err.status_code, error: err.error };
  }
}
