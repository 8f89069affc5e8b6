// The client's side of requests, against a loopback server that records them: the
// constructor's checks, camelCase -> snake_case, query strings, paths, the bearer header,
// and unknown keys refused with a TypeError naming them before any request is sent.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';

import { DEFAULT_SOCKET, SymbidError, SymbiontClient } from '../index.js';

let server;
let baseUrl;
const requests = [];
let answer = { status: 200, body: { id: 'job-1' } };

before(async () => {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method, url: req.url, headers: req.headers,
        body: text ? JSON.parse(text) : undefined });
      res.writeHead(answer.status, { 'Content-Type': answer.type ?? 'application/json' });
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  server.closeAllConnections?.();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests.length = 0;
  answer = { status: 200, body: { id: 'job-1' } };
});

const client = () => new SymbiontClient({ baseUrl, apiKey: 'k3y' });

describe('the constructor', () => {
  test('takes baseUrl, apiKey, socketPath and timeoutMs, and nothing else', () => {
    assert.throws(() => new SymbiontClient({ baseUrl, apikey: 'x' }),
      { name: 'TypeError', message: /unknown key apikey; it takes baseUrl, apiKey, socketPath, timeoutMs/ });
    assert.throws(() => new SymbiontClient({ base_url: baseUrl }),
      { name: 'TypeError', message: /base_url \(did you mean baseUrl\?\)/ });
    assert.throws(() => new SymbiontClient('http://localhost:8080'), TypeError);
    assert.throws(() => new SymbiontClient({ baseUrl, socketPath: '/tmp/s' }),
      { name: 'TypeError', message: /not both/ });
    assert.throws(() => new SymbiontClient({ socketPath: '/tmp/s', apiKey: 'k' }),
      { name: 'TypeError', message: /apiKey is sent over TCP only/ });
    assert.throws(() => new SymbiontClient({ baseUrl: 'localhost:8080' }), TypeError);
    assert.throws(() => new SymbiontClient({ baseUrl: 'ftp://host/' }), TypeError);
    assert.throws(() => new SymbiontClient({ baseUrl: 'http://u:p@host/' }), TypeError);
    assert.throws(() => new SymbiontClient({ baseUrl: 'http://host/?x=1' }), TypeError);
    assert.throws(() => new SymbiontClient({ baseUrl, apiKey: 42 }), TypeError);
    for (const timeoutMs of [0, -1, Infinity, NaN, '1000', 2 ** 31]) {
      assert.throws(() => new SymbiontClient({ baseUrl, timeoutMs }),
        { name: 'TypeError', message: /timeoutMs/ }, String(timeoutMs));
    }
  });

  test('defaults: the socket from SYMBI_SOCKET or the packaged one, 30 s', () => {
    const saved = process.env.SYMBI_SOCKET;
    try {
      delete process.env.SYMBI_SOCKET;
      const plain = new SymbiontClient();
      assert.equal(plain.socketPath, DEFAULT_SOCKET);
      assert.equal(plain.baseUrl, null);
      assert.equal(plain.timeoutMs, 30_000);
      process.env.SYMBI_SOCKET = '/tmp/other.sock';
      assert.equal(new SymbiontClient({}).socketPath, '/tmp/other.sock');
      assert.equal(new SymbiontClient({ socketPath: '/tmp/mine.sock' }).socketPath,
        '/tmp/mine.sock');
    } finally {
      if (saved === undefined) delete process.env.SYMBI_SOCKET;
      else process.env.SYMBI_SOCKET = saved;
    }
    const tcp = new SymbiontClient({ baseUrl: 'http://127.0.0.1:8080/api/v1/' });
    assert.equal(tcp.baseUrl, 'http://127.0.0.1:8080');
    assert.equal(tcp.socketPath, null);
    assert.throws(() => { tcp.schedule = null; }, TypeError); // frozen
  });

  test('a base URL keeps its path (a reverse proxy) and loses /api/v1', async () => {
    answer.body = [];
    for (const base of [`${baseUrl}/symbid`, `${baseUrl}/symbid/`, `${baseUrl}/symbid/api/v1`]) {
      await new SymbiontClient({ baseUrl: base }).schedule.list();
    }
    assert.deepEqual(requests.map((r) => r.url), Array(3).fill('/symbid/api/v1/schedule'));
    assert.equal(requests[0].headers.authorization, undefined); // no apiKey: no header
  });
});

describe('requests', () => {
  test('create maps camelCase to the API names at every level, and sends the token', async () => {
    const at = new Date('2031-05-04T03:02:01Z');
    await client().schedule.create({
      name: 'n', agentId: 'a', at, timezone: 'UTC', sessionMode: 'fully_ephemeral',
      heartbeat: { enabled: true, contextMode: 'shared_persistent', maxIterations: 2 },
      delivery: ['webhook'], deliveryConfig: { webhookUrl: 'http://h/', slackChannel: '#c',
        emailRecipients: ['e@x'], webhookSecret: '${S}',
        webhookHeaders: { 'X-Api_Key': 'v', camelCase: 'kept' } },
      webhookUrl: 'http://h2/', webhookHeaders: { snake_case: 'kept' }, slackChannel: '#d',
      emailRecipients: [], webhookSecret: null, alert: ['slack'], alertCooldown: 60,
      alertIfNoSuccessWithin: '1d',
      policy: { requireApproval: true, approvers: ['me'], maxRuntime: 30,
        requireCapabilities: ['x'], allowedHours: { start: '01:00', end: '02:00',
          timezone: 'UTC' }, allowedEnvironments: ['prod'], requireAgentPin: true,
        approvalTimeout: '1h' },
      maxConcurrent: 1, maxRetries: null, jitterSeconds: 0, catchUp: 'all', catchUpLimit: 3,
      input: 'in', agentPinJwt: '${J}', allowPast: true, cronExpr: undefined,
    });
    const [req] = requests;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/api/v1/schedule');
    assert.equal(req.headers.authorization, 'Bearer k3y');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.deepEqual(req.body, {
      name: 'n', agent_id: 'a', at: '2031-05-04T03:02:01.000Z', timezone: 'UTC',
      session_mode: 'fully_ephemeral',
      heartbeat: { enabled: true, context_mode: 'shared_persistent', max_iterations: 2 },
      delivery: ['webhook'], delivery_config: { webhook_url: 'http://h/', slack_channel: '#c',
        email_recipients: ['e@x'], webhook_secret: '${S}',
        webhook_headers: { 'X-Api_Key': 'v', camelCase: 'kept' } },
      webhook_url: 'http://h2/', webhook_headers: { snake_case: 'kept' }, slack_channel: '#d',
      email_recipients: [], webhook_secret: null, alert: ['slack'], alert_cooldown: 60,
      alert_if_no_success_within: '1d',
      policy: { require_approval: true, approvers: ['me'], max_runtime: 30,
        require_capabilities: ['x'], allowed_hours: { start: '01:00', end: '02:00',
          timezone: 'UTC' }, allowed_environments: ['prod'], require_agent_pin: true,
        approval_timeout: '1h' },
      max_concurrent: 1, max_retries: null, jitter_seconds: 0, catch_up: 'all',
      catch_up_limit: 3, input: 'in', agent_pin_jwt: '${J}', allow_past: true,
    });
  });

  test('every method: its method, path, query and body', async () => {
    const c = client();
    answer.body = { id: 'job 1' };
    await c.schedule.list({ status: 'active', agentId: 'a b', idPrefix: 'abcdef12', all: true });
    await c.schedule.list();
    await c.schedule.get('job/1');
    await c.schedule.getStatus('nightly', { history: 3 });
    await c.schedule.update('j', { cronExpr: '@daily', policy: { allowedHours: null } });
    await c.schedule.runNow('j', { input: 'x' });
    await c.schedule.runNow('j');
    await c.schedule.pause('j');
    await c.schedule.resume('j');
    await c.schedule.reset('j');
    await c.schedule.delete('j');
    await c.schedule.getHistory('j', { limit: 10, status: 'failed' });
    await c.schedule.getRun('r');
    await c.schedule.cancelRun('r');
    await c.schedule.nextRuns('j', { count: 5 });
    await c.schedule.health();
    await c.health();
    await c.runs.pending();
    await c.runs.approve('r', { comment: 'ok' });
    await c.runs.deny('r', { reason: 'no' });
    await c.runs.approve('r');
    await c.audit.query({ type: 'ApprovalGranted', job: 'j', actor: 'me',
      since: new Date('2030-01-01T00:00:00Z'), until: '2030-02-01', limit: 5 });
    await c.audit.query();
    assert.deepEqual(requests.map((r) => [r.method, r.url, r.body]), [
      ['GET', '/api/v1/schedule?status=active&agent_id=a+b&id_prefix=abcdef12&all=true', undefined],
      ['GET', '/api/v1/schedule', undefined],
      ['GET', '/api/v1/schedule/job%2F1', undefined],
      ['GET', '/api/v1/schedule/nightly', undefined],
      ['GET', '/api/v1/schedule/job%201/history?limit=3', undefined], // by the id it answered
      ['PUT', '/api/v1/schedule/j', { cron_expr: '@daily', policy: { allowed_hours: null } }],
      ['POST', '/api/v1/schedule/j/run', { input: 'x' }],
      ['POST', '/api/v1/schedule/j/run', {}],
      ['POST', '/api/v1/schedule/j/pause', undefined],
      ['POST', '/api/v1/schedule/j/resume', undefined],
      ['POST', '/api/v1/schedule/j/reset', undefined],
      ['DELETE', '/api/v1/schedule/j', undefined],
      ['GET', '/api/v1/schedule/j/history?limit=10&status=failed', undefined],
      ['GET', '/api/v1/runs/r', undefined],
      ['POST', '/api/v1/runs/r/cancel', undefined],
      ['GET', '/api/v1/schedule/j/next_run?count=5', undefined],
      ['GET', '/api/v1/health/scheduler', undefined],
      ['GET', '/api/v1/health/scheduler', undefined],
      ['GET', '/api/v1/approvals', undefined],
      ['POST', '/api/v1/runs/r/approve', { comment: 'ok' }],
      ['POST', '/api/v1/runs/r/deny', { reason: 'no' }],
      ['POST', '/api/v1/runs/r/approve', {}],
      ['GET', '/api/v1/audit?type=ApprovalGranted&job=j&actor=me&since=2030-01-01T00%3A00%3A00.000Z' +
        '&until=2030-02-01&limit=5', undefined],
      ['GET', '/api/v1/audit', undefined],
    ]);
    assert.ok(requests.every((r) => r.headers.authorization === 'Bearer k3y'));
    assert.ok(requests.every((r) => r.headers.accept === 'application/json'));
  });

  test('results are the API JSON as it is; a body that is not JSON is an error', async () => {
    answer.body = { id: 'j', next_run: '2030-01-01T00:00:00Z', delivery_config: { webhook_url: null } };
    assert.deepEqual(await client().schedule.get('j'), answer.body);
    answer = { status: 200, body: '<html>', type: 'text/html' };
    await assert.rejects(client().schedule.get('j'),
      (err) => err instanceof SymbidError && err.code === 'bad_response' && err.status === 200);
    answer = { status: 502, body: 'Bad Gateway', type: 'text/plain' };
    await assert.rejects(client().schedule.get('j'), (err) => err instanceof SymbidError &&
      err.status === 502 && err.code === 'error' && err.field === null &&
      err.message === `HTTP 502 from ${baseUrl}/api/v1/schedule/j`);
    answer = { status: 400, body: { error: { code: 'invalid_input', message: 'm', field: 'f' } } };
    await assert.rejects(client().schedule.get('j'), { name: 'SymbidError', status: 400,
      code: 'invalid_input', field: 'f', message: 'm' });
  });
});

describe('unknown keys are refused before any request', () => {
  const cases = [
    ['schedule.create', (c) => c.schedule.create({ name: 'n', agentId: 'a', colour: 'red' }),
      /^schedule\.create: unknown key colour; it takes name, agentId, cronExpr, at, /],
    ['schedule.create snake_case', (c) => c.schedule.create({ name: 'n', agent_id: 'a',
      cron_expr: '@daily' }), /unknown keys agent_id \(did you mean agentId\?\), cron_expr \(did you mean cronExpr\?\)/],
    ['schedule.create read-only', (c) => c.schedule.create({ name: 'n', status: 'paused' }),
      /unknown key status/],
    ['policy', (c) => c.schedule.create({ name: 'n', policy: { requireApproval: true,
      approver: ['x'] } }), /^schedule\.create\.policy: unknown key approver; it takes requireApproval, approvers,/],
    ['policy.allowedHours', (c) => c.schedule.create({ name: 'n', policy: { allowedHours: {
      start: '01:00', end: '02:00', tz: 'UTC' } } }), /^schedule\.create\.policy\.allowedHours: unknown key tz; it takes start, end, timezone$/],
    ['heartbeat', (c) => c.schedule.create({ name: 'n', heartbeat: { context_mode: 'x' } }),
      /heartbeat: unknown key context_mode \(did you mean contextMode\?\)/],
    ['deliveryConfig', (c) => c.schedule.create({ name: 'n', deliveryConfig: { url: 'x' } }),
      /deliveryConfig: unknown key url/],
    ['createMany, by index', (c) => c.schedule.createMany([{ name: 'a' },
      { name: 'b', agent_id: 'x' }]), /^schedule\.createMany\[1\]: unknown key agent_id \(did you mean agentId\?\)/],
    ['createMany, not an array', (c) => c.schedule.createMany({ name: 'a' }),
      /^schedule\.createMany: expected a non-empty array of jobs' fields, got an object$/],
    ['createMany, empty', (c) => c.schedule.createMany([]),
      /^schedule\.createMany: expected a non-empty array of jobs' fields, got an empty array$/],
    ['createMany, not a job', (c) => c.schedule.createMany([{ name: 'a' }, 'b']),
      /^schedule\.createMany\[1\]: expected the job's fields, got string$/],
    ['update allowPast', (c) => c.schedule.update('j', { allowPast: true }),
      /^schedule\.update: unknown key allowPast/],
    ['update', (c) => c.schedule.update('j', { id: 'other' }), /schedule\.update: unknown key id/],
    ['list', (c) => c.schedule.list({ agent: 'a' }),
      /^schedule\.list: unknown key agent; it takes status, agentId, idPrefix, all$/],
    ['getStatus', (c) => c.schedule.getStatus('j', { limit: 2 }),
      /^schedule\.getStatus: unknown key limit; it takes history$/],
    ['runNow', (c) => c.schedule.runNow('j', { input: 'x', wait: true }),
      /^schedule\.runNow: unknown key wait; it takes input$/],
    ['getHistory', (c) => c.schedule.getHistory('j', { count: 3 }),
      /^schedule\.getHistory: unknown key count; it takes limit, status$/],
    ['nextRuns', (c) => c.schedule.nextRuns('j', { limit: 3 }),
      /^schedule\.nextRuns: unknown key limit; it takes count$/],
    ['approve', (c) => c.runs.approve('r', { reason: 'x' }),
      /^runs\.approve: unknown key reason; it takes comment$/],
    ['deny', (c) => c.runs.deny('r', { comment: 'x' }),
      /^runs\.deny: unknown key comment; it takes reason$/],
    ['audit.query', (c) => c.audit.query({ event: 'x' }),
      /^audit\.query: unknown key event; it takes type, job, actor, since, until, limit$/],
  ];
  for (const [what, call, message] of cases) {
    test(what, async () => {
      await assert.rejects(call(client()), { name: 'TypeError', message });
      assert.equal(requests.length, 0);
    });
  }

  test('ids, options and query values of the wrong kind', async () => {
    const c = client();
    for (const call of [
      () => c.schedule.get(''), () => c.schedule.get(undefined), () => c.schedule.get(7),
      () => c.schedule.getRun(null), () => c.schedule.cancelRun({}),
      () => c.runs.approve(''), () => c.schedule.delete(),
      () => c.schedule.create(), () => c.schedule.create([]), () => c.schedule.update('j'),
      () => c.schedule.list('active'), () => c.schedule.runNow('j', 'input'),
      () => c.schedule.getHistory('j', { limit: [1] }), () => c.audit.query({ job: {} }),
      () => c.schedule.getStatus('j', { history: -1 }),
      () => c.schedule.getStatus('j', { history: 2.5 }),
    ]) {
      await assert.rejects(call(), TypeError, String(call));
    }
    assert.equal(requests.length, 0);
  });
});
