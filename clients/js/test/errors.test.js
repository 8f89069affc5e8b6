// Errors: the API's (404, 400 with its field, 401, 403, 409) as SymbidError with status,
// code and field, against a real daemon; a daemon that cannot be reached names the URL or
// the socket; one that does not answer names the timeout.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { SymbidError, SymbiontClient } from '../index.js';
import { Daemon, TOKEN, freePort, waitFor } from './daemon.js';

let daemon;

before(async () => {
  daemon = await new Daemon().start();
});

after(async () => {
  await daemon?.stop();
});

/** A predicate for assert.rejects: a SymbidError with these properties. */
function symbidError(expected) {
  return (err) => {
    assert.ok(err instanceof SymbidError, `not a SymbidError: ${err}`);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'SymbidError');
    for (const [key, value] of Object.entries(expected)) {
      if (value instanceof RegExp) assert.match(err[key], value, key);
      else assert.equal(err[key], value, key);
    }
    return true;
  };
}

const clients = [
  ['over TCP', () => new SymbiontClient({ baseUrl: daemon.baseUrl, apiKey: TOKEN })],
  ['over the Unix socket', () => new SymbiontClient({ socketPath: daemon.socket })],
];

for (const [over, connect] of clients) {
  describe(`API errors ${over}`, () => {
    test('404: no such job, no such run', async () => {
      const client = connect();
      await assert.rejects(client.schedule.get('no-such-job'), symbidError({
        status: 404, code: 'not_found', field: null, method: 'GET',
        message: /no job with id or name 'no-such-job'/, url: /\/api\/v1\/schedule\/no-such-job/,
      }));
      await assert.rejects(client.schedule.getRun('00000000-0000-0000-0000-000000000000'),
        symbidError({ status: 404, code: 'not_found' }));
      await assert.rejects(client.schedule.runNow('no-such-job'), symbidError({ status: 404 }));
      await assert.rejects(client.runs.approve('00000000-0000-0000-0000-000000000000'),
        symbidError({ status: 404 }));
    });

    test('createMany: all created in order, or none, each bad element named by index',
      async () => {
        const client = connect();
        const tag = over.includes('TCP') ? 'tcp' : 'sock';
        const made = await client.schedule.createMany([
          { name: `many-a-${tag}`, agentId: 'backup-agent', cronExpr: '0 3 * * *' },
          { name: `many-b-${tag}`, agentId: 'backup-agent', at: '2099-01-01T00:00:00Z' },
        ]);
        assert.deepEqual(made.map((j) => j.name), [`many-a-${tag}`, `many-b-${tag}`]);
        await assert.rejects(client.schedule.createMany([
          { name: `many-c-${tag}`, agentId: 'backup-agent', cronExpr: '0 3 * * *' },
          { name: `many-d-${tag}`, agentId: 'backup-agent', cronExpr: 'nope' },
          { name: `many-a-${tag}`, agentId: 'backup-agent', cronExpr: '@daily' },
        ]), (err) => {
          symbidError({ status: 400, field: '[1].cron_expr' })(err);
          assert.deepEqual(err.errors.map((e) => [e.index, e.field]),
            [[1, '[1].cron_expr'], [2, '[2].name']]);
          return true;
        });
        await assert.rejects(client.schedule.get(`many-c-${tag}`), symbidError({ status: 404 }));
        for (const job of made) await client.schedule.delete(job.id);  // the others expect none
      });

    test('400 names the field', async () => {
      const client = connect();
      await assert.rejects(
        client.schedule.create({ name: 'x', agentId: 'backup-agent', cronExpr: 'nope' }),
        symbidError({ status: 400, code: 'invalid_cron', field: 'cron_expr',
          message: /cron expression 'nope'/ }));
      await assert.rejects(client.schedule.create({ name: 'x', agentId: 'backup-agent' }),
        symbidError({ status: 400, field: 'cron_expr', message: /exactly one of cron_expr/ }));
      await assert.rejects(
        client.schedule.create({ name: 'x', agentId: 'nobody', cronExpr: '@daily' }),
        symbidError({ status: 400, field: 'agent_id' }));
      await assert.rejects(client.schedule.create({ name: 'x', agentId: 'backup-agent',
        cronExpr: '@daily', policy: { maxRuntime: 'soon' } }),
      symbidError({ status: 400, field: 'policy.max_runtime' }));
      await assert.rejects(client.schedule.create({ name: 'x', agentId: 'backup-agent',
        cronExpr: '@daily', maxRetries: '3' }),
      symbidError({ status: 400, code: 'invalid_input', field: 'max_retries' }));
      await assert.rejects(client.schedule.list({ status: 'bogus' }),
        symbidError({ status: 400, field: 'status' }));
      await assert.rejects(client.audit.query({ since: 'yesterday' }),
        symbidError({ status: 400, field: 'since' }));
      assert.deepEqual(await client.schedule.list(), []); // nothing was written

      const job = await client.schedule.create({ name: 'kept', agentId: 'backup-agent',
        cronExpr: '@daily' });
      try {
        await assert.rejects(client.schedule.getHistory(job.id, { limit: 0 }),
          symbidError({ status: 400, field: 'limit' }));
        await assert.rejects(client.schedule.nextRuns(job.id, { count: 1001 }),
          symbidError({ status: 400, field: 'count' }));
        await assert.rejects(client.schedule.update(job.id, { timezone: 'Mars/Base' }),
          symbidError({ status: 400, field: 'timezone' }));
        await assert.rejects(client.schedule.runNow(job.id, { input: 7 }),
          symbidError({ status: 400, field: 'input' }));
        // 409: a job that is not in dead_letter cannot be reset; a name is taken
        await assert.rejects(client.schedule.reset(job.id),
          symbidError({ status: 409, code: 'conflict' }));
        await assert.rejects(client.schedule.create({ name: 'kept', agentId: 'backup-agent',
          cronExpr: '@daily' }), symbidError({ status: 409, field: 'name' }));
      } finally {
        await client.schedule.delete(job.id);
      }
    });

    test('403: only an approver may decide', async () => {
      const client = connect();
      const job = await client.schedule.create({ name: 'for-alice', agentId: 'backup-agent',
        cronExpr: '@yearly', policy: { requireApproval: true, approvers: ['alice'] } });
      try {
        const run = await client.schedule.runNow(job.id);
        await waitFor(async () => (await client.schedule.getRun(run.id)).status ===
          'awaiting_approval', { what: 'awaiting_approval' });
        await assert.rejects(client.runs.approve(run.id, { comment: 'me' }),
          symbidError({ status: 403, code: 'forbidden', message: /^only alice may approve/ }));
        await assert.rejects(client.runs.deny(run.id, { reason: 'me' }),
          symbidError({ status: 403, code: 'forbidden' }));
      } finally {
        await client.schedule.delete(job.id);
      }
    });
  });
}

describe('401 over TCP', () => {
  test('a wrong token, or none, gets 401 unauthorized and nothing else', async () => {
    for (const options of [{ baseUrl: daemon.baseUrl, apiKey: 'wrong-token' },
      { baseUrl: daemon.baseUrl }]) {
      const client = new SymbiontClient(options);
      await assert.rejects(client.schedule.list(), symbidError({
        status: 401, code: 'unauthorized', field: null,
        message: /a valid Authorization: Bearer token is required/,
      }));
      await assert.rejects(client.schedule.create({ name: 'x', agentId: 'backup-agent',
        cronExpr: '@daily' }), symbidError({ status: 401 }));
      await assert.rejects(client.health(), symbidError({ status: 401 }));
    }
    const right = new SymbiontClient({ baseUrl: `${daemon.baseUrl}/api/v1/`, apiKey: TOKEN });
    assert.deepEqual(await right.schedule.list(), []);
  });
});

describe('a daemon that cannot be reached', () => {
  test('a missing socket is named, with a hint', async () => {
    const client = new SymbiontClient({ socketPath: `${daemon.socket}.missing` });
    await assert.rejects(client.schedule.list({ status: 'active' }), symbidError({
      status: null, code: 'unavailable', field: null,
      message: new RegExp(`^cannot reach symbid at the socket ${daemon.socket}\\.missing ` +
        '\\(/api/v1/schedule\\?status=active\\): .*ENOENT.*is symbid running'),
      url: `the socket ${daemon.socket}.missing (/api/v1/schedule?status=active)`,
    }));
  });

  test('a closed port is named by its URL', async () => {
    const port = await freePort();
    const client = new SymbiontClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: TOKEN });
    await assert.rejects(client.schedule.get('x'), symbidError({
      status: null, code: 'unavailable',
      message: new RegExp(`^cannot reach symbid at http://127\\.0\\.0\\.1:${port}` +
        '/api/v1/schedule/x: .*ECONNREFUSED'),
      url: `http://127.0.0.1:${port}/api/v1/schedule/x`,
    }));
  });

  test('a daemon that does not answer: the error names the timeout', async () => {
    const held = [];
    const silent = net.createServer((socket) => held.push(socket)); // accepts, never answers
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address();
    try {
      const client = new SymbiontClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 200 });
      assert.equal(client.timeoutMs, 200);
      await assert.rejects(client.schedule.list(), symbidError({
        status: null, code: 'timeout',
        message: `no answer from symbid at http://127.0.0.1:${port}/api/v1/schedule within ` +
          '200 ms (timeoutMs)',
      }));
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
