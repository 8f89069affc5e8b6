// A real symbid daemon for the tests: the project's .venv/bin/symbid, in a temporary
// directory, on a Unix socket and a loopback TCP port with a bearer token. Every daemon
// started is stopped (SIGTERM to its own pid, SIGKILL only if it does not stop) and its
// directory removed, also when a test file ends early.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync,
  writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SYMBID = path.join(REPO, '.venv', 'bin', 'symbid');
export const TOKEN = 'js-client-test-token-0123456789';
/** Who the socket's peer is, by name: this process's user (an approver over the socket). */
export const ME = userInfo().username;
/** Who a request with TOKEN is (token_file's holder). */
export const TOKEN_NAME = 'default';

export const AGENTS = `
agent backup-agent { command: ["/bin/sh", "-c", "echo backed up; cat"] }
agent fail { command: ["/bin/sh", "-c", "echo broken >&2; exit 3"] }
agent hang { command: ["/bin/sh", "-c", "echo waiting; exec sleep 300"] }
`;

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGTERM'); // the daemon then stops its runs' process groups itself
    } catch {
      // already gone
    }
  }
});

/** A free loopback TCP port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Poll ``probe`` until it returns something truthy (generous bound: a hung daemon fails
 * the test instead of hanging it). */
export async function waitFor(probe, { timeoutMs = 30_000, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function socketGet(socketPath, urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
  });
}

export class Daemon {
  constructor({ agents = AGENTS, config = '' } = {}) {
    if (!existsSync(SYMBID)) {
      throw new Error(`no symbid at ${SYMBID}: build the project's venv first (make install ` +
        'in the repository root)');
    }
    this.agents = agents;
    this.extra = config;
    this.child = null;
  }

  async start() {
    // Unix socket paths must be short: everything lives in one short directory in /tmp.
    this.root = mkdtempSync('/tmp/symbid-js-');
    this.socket = path.join(this.root, 'control.sock');
    this.port = await freePort();
    this.baseUrl = `http://127.0.0.1:${this.port}`;
    mkdirSync(path.join(this.root, 'agents.d'));
    writeFileSync(path.join(this.root, 'agents.d', 'agents.symbi'), this.agents);
    writeFileSync(path.join(this.root, 'token'), `${TOKEN}\n`, { mode: 0o600 });
    this.config = path.join(this.root, 'symbid.toml');
    writeFileSync(this.config, [
      '[daemon]', 'state_dir = "state"', `socket = "${this.socket}"`,
      'agents_dir = "agents.d"', 'log_dir = "logs"', 'runs_dir = "runs"', '',
      '[api]', `listen = "127.0.0.1:${this.port}"`, 'token_file = "token"', '',
      '[scheduler]', 'shutdown_timeout_seconds = 3', 'kill_grace_seconds = 1',
      'retry_backoff_seconds = 1', this.extra, '',
    ].join('\n'));
    this.log = path.join(this.root, 'symbid.log');
    const env = { ...process.env };
    for (const key of ['NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES',
      'SYMBI_API_KEY', 'SYMBI_SOCKET', 'JOURNAL_STREAM']) delete env[key];
    const out = openSync(this.log, 'a');
    try {
      this.child = spawn(SYMBID, ['--config', this.config], { stdio: ['ignore', out, out], env });
    } finally {
      closeSync(out);
    }
    live.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      live.delete(this.child);
      resolve({ code, signal });
    }));
    let gone = null;
    this.exited.then((how) => { gone = how; });
    await waitFor(async () => {
      if (gone) {
        throw new Error(`symbid exited (${JSON.stringify(gone)}):\n${this.logText()}`);
      }
      try {
        return (await socketGet(this.socket, '/api/v1/health/scheduler')) === 200;
      } catch {
        return false;
      }
    }, { what: 'symbid to come up' }).catch((err) => {
      throw new Error(`${err.message}\n${this.logText()}`);
    });
    return this;
  }

  logText() {
    try {
      return readFileSync(this.log, 'utf8').slice(-4000);
    } catch {
      return '(no log)';
    }
  }

  /** Stop the daemon as systemd would, then remove its directory. */
  async stop() {
    if (this.child !== null && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      let timer;
      const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), 20_000); });
      const stopped = await Promise.race([this.exited, late]);
      clearTimeout(timer);
      if (stopped === null) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    if (this.root) rmSync(this.root, { recursive: true, force: true });
  }
}

/** A loopback HTTP server that records what is POSTed to it (a webhook's receiver). */
export async function receiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    received,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}
