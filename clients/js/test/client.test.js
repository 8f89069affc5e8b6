// The seed guide's JavaScript example, and every method of the client, against a real
// symbid daemon: once over TCP (Authorization: Bearer) and once over the Unix socket.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { SymbidError, SymbiontClient } from '../index.js';
import { Daemon, ME, TOKEN, TOKEN_NAME, receiver, waitFor } from './daemon.js';

// Slack and email are configured (to nowhere) so that a job may name every channel; no
// job of these tests ever sends to them.
const DELIVERY = `
[scheduler.delivery]
slack_api_token = "xoxb-not-used"
slack_api_base = "http://127.0.0.1:9"
smtp_host = "127.0.0.1"
smtp_port = 9
smtp_starttls = false
email_from = "symbid <symbid@localhost>"
backoff_seconds = 0.1
`;

const OPEN = ['pending', 'awaiting_approval', 'running'];

let daemon;
let hook;

before(async () => {
  hook = await receiver();
  daemon = await new Daemon({ config: DELIVERY }).start();
});

after(async () => {
  await daemon?.stop();
  await hook?.close();
});

async function ended(client, runId) {
  return waitFor(async () => {
    const run = await client.schedule.getRun(runId);
    return OPEN.includes(run.status) ? null : run;
  }, { what: `run ${runId} to end` });
}

async function reaches(client, runId, status) {
  return waitFor(async () => {
    const run = await client.schedule.getRun(runId);
    return run.status === status ? run : null;
  }, { what: `run ${runId} to be ${status}` });
}

const transports = [
  ['over TCP', 'tcp', () => new SymbiontClient({ baseUrl: daemon.baseUrl, apiKey: TOKEN }),
    TOKEN_NAME],
  ['over the Unix socket', 'sock', () => new SymbiontClient({ socketPath: daemon.socket }), ME],
];

for (const [over, tag, connect, actor] of transports) {
  describe(over, () => {
    test("the seed's JavaScript example runs end to end", async () => {
      const lines = [];
      const console = { log: (line) => lines.push(line) };
      const client = connect();

      // --- the seed's example (webhookUrl: a loopback receiver instead of example.com) ---
      const job = await client.schedule.create({
        name: `daily-backup-${tag}`,
        agentId: 'backup-agent',
        cronExpr: '0 2 * * *',
        sessionMode: 'ephemeral_with_summary',
        delivery: ['webhook'],
        webhookUrl: `${hook.url}/notify`,
      });
      console.log(`Created job: ${job.id}`);

      const activeJobs = await client.schedule.list({ status: 'active' });
      console.log(`Active jobs: ${activeJobs.length}`);

      const status = await client.schedule.getStatus(job.id);
      console.log(`Next run: ${status.next_run}`);

      const queued = await client.schedule.runNow(job.id, { input: 'Backup database' });
      // (the example goes straight on; the run is waited for, so history has its time)
      const done = await ended(client, queued.id);

      await client.schedule.pause(job.id);

      const history = await client.schedule.getHistory(job.id, { limit: 10 });
      history.forEach((run) => {
        console.log(`Run ${run.id}: ${run.status} (${run.execution_time_ms}ms)`);
      });

      const resumed = await client.schedule.resume(job.id);
      // the webhook is delivered off the run, by the outbox: waited for before the delete
      const delivered = await waitFor(async () => {
        const run = await client.schedule.getRun(queued.id);
        return run.delivery_status === 'delivered' ? run : null;
      }, { what: 'the webhook delivery' });

      const deleted = await client.schedule.delete(job.id);
      // --- end of the example ---

      assert.equal(job.name, `daily-backup-${tag}`);
      assert.equal(job.agent_id, 'backup-agent');
      assert.equal(job.cron_expr, '0 2 * * *');
      assert.equal(job.session_mode, 'ephemeral_with_summary');
      assert.deepEqual(job.delivery, ['webhook']);
      assert.equal(job.delivery_config.webhook_url, `${hook.url}/notify`);
      assert.ok(activeJobs.some((j) => j.id === job.id));
      assert.match(status.next_run, /^\d{4}-\d\d-\d\dT02:00:00Z$/);
      assert.deepEqual(status.recent_runs, []);
      assert.equal(queued.trigger, 'manual');
      assert.equal(done.status, 'succeeded');
      assert.equal(done.output, 'backed up\nBackup database');
      assert.equal(history.length, 1);
      assert.equal(history[0].id, queued.id);
      assert.equal(history[0].status, 'succeeded');
      assert.ok(Number.isInteger(history[0].execution_time_ms) &&
        history[0].execution_time_ms >= 0, `execution_time_ms: ${history[0].execution_time_ms}`);
      assert.equal(resumed.status, 'active');
      assert.equal(delivered.deliveries[0].channel, 'webhook');
      const post = hook.received.find((r) => r.headers['x-symbid-delivery-id'] ===
        delivered.deliveries[0].id);
      assert.ok(post, 'the webhook receiver got the run');
      assert.equal(post.method, 'POST');
      assert.equal(post.url, '/notify');
      assert.ok(post.body.includes(queued.id));
      assert.deepEqual(deleted, { id: job.id, name: job.name, deleted: true });
      await assert.rejects(client.schedule.get(job.id), { name: 'SymbidError', status: 404 });

      assert.deepEqual(lines, [
        `Created job: ${job.id}`,
        `Active jobs: ${activeJobs.length}`,
        `Next run: ${status.next_run}`,
        `Run ${queued.id}: succeeded (${history[0].execution_time_ms}ms)`,
      ]);
    });

    test('create takes every definition field in camelCase; get, update, list', async () => {
      const client = connect();
      const name = `every-field-${tag}`;
      const job = await client.schedule.create({
        name,
        agentId: 'backup-agent',
        cronExpr: '0 3 * * *',
        timezone: 'Europe/Berlin',
        sessionMode: 'shared_persistent',
        heartbeat: { enabled: true, contextMode: 'fully_ephemeral', maxIterations: 3 },
        delivery: ['webhook', 'slack', 'email'],
        deliveryConfig: { webhookUrl: `${hook.url}/nested`, webhookHeaders: { 'X-Team': 'ops' },
          webhookSecret: '${HOOK_SECRET}' },
        slackChannel: '#ops',
        emailRecipients: ['ops@example.com'],
        alert: ['webhook'],
        alertCooldown: '30m',
        alertIfNoSuccessWithin: '2d',
        policy: {
          requireApproval: true, approvers: [actor], maxRuntime: '5m', requireCapabilities: [],
          allowedHours: { start: '01:00', end: '05:00', timezone: 'Europe/Berlin' },
          allowedEnvironments: ['production'], requireAgentPin: false, approvalTimeout: '1h',
        },
        maxConcurrent: 2,
        maxRetries: 1,
        jitterSeconds: 5,
        catchUp: 'skip',
        catchUpLimit: 10,
        input: 'nightly',
        agentPinJwt: '${PIN_JWT}',
        allowPast: false,
      });
      assert.equal(job.timezone, 'Europe/Berlin');
      assert.equal(job.session_mode, 'shared_persistent');
      assert.deepEqual(job.heartbeat, { enabled: true, context_mode: 'fully_ephemeral',
        max_iterations: 3 });
      assert.deepEqual(job.delivery_config, {
        webhook_url: `${hook.url}/nested`, webhook_headers: { 'X-Team': 'ops' },
        slack_channel: '#ops', email_recipients: ['ops@example.com'],
        webhook_secret: '${HOOK_SECRET}',
      });
      assert.deepEqual(job.alert, ['webhook']);
      assert.equal(job.alert_cooldown, 1800);
      assert.equal(job.alert_if_no_success_within, 172800);
      assert.deepEqual(job.policy, {
        require_approval: true, approvers: [actor], max_runtime: '5m', require_capabilities: [],
        allowed_hours: { start: '01:00', end: '05:00', timezone: 'Europe/Berlin' },
        allowed_environments: ['production'], require_agent_pin: false, approval_timeout: '1h',
      });
      assert.deepEqual([job.max_concurrent, job.max_retries, job.jitter_seconds, job.catch_up,
        job.catch_up_limit, job.input, job.agent_pin_jwt],
      [2, 1, 5, 'skip', 10, 'nightly', '${PIN_JWT}']);

      const got = await client.schedule.get(name); // by name as well as by id
      assert.equal(got.id, job.id);
      assert.equal(got.alert_state, null); // a job with alert channels, before its first

      const updated = await client.schedule.update(job.id, {
        cronExpr: '*/30 * * * *', maxRetries: null, policy: { allowedHours: null },
        heartbeat: { enabled: false },
      });
      assert.equal(updated.cron_expr, '*/30 * * * *');
      assert.equal(updated.max_retries, null);
      assert.equal(updated.policy.allowed_hours, null);
      assert.equal(updated.policy.max_runtime, '5m'); // what the patch does not name stays
      assert.equal(updated.heartbeat.enabled, false);

      const listed = await client.schedule.list({ agentId: 'backup-agent', status: 'active' });
      assert.ok(listed.some((j) => j.id === job.id));
      assert.deepEqual(await client.schedule.list({ agentId: 'nobody' }), []);
      const byPrefix = await client.schedule.list({ idPrefix: job.id.slice(0, 8), all: true });
      assert.deepEqual(byPrefix.map((j) => j.id), [job.id]);

      const next = await client.schedule.nextRuns(job.id, { count: 3 });
      assert.equal(next.job_id, job.id);
      assert.equal(next.name, name);
      assert.equal(next.next_runs.length, 3);
      assert.equal(next.next_run, updated.next_run);
      assert.equal((await client.schedule.nextRuns(job.id)).next_runs.length, 1);
      await client.schedule.pause(job.id);
      assert.deepEqual((await client.schedule.nextRuns(job.id, { count: 3 })).next_runs, []);

      // a one-shot `at` job, given as a Date
      const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 86_400_000);
      const once = await client.schedule.create({ name: `once-${tag}`, agentId: 'backup-agent',
        at });
      assert.equal(Date.parse(once.at), at.getTime());
      assert.equal(once.cron_expr, null);

      for (const id of [job.id, once.id]) await client.schedule.delete(id);
    });

    test('getStatus has the recent runs, getHistory filters by status and limit', async () => {
      const client = connect();
      const job = await client.schedule.create({ name: `statused-${tag}`,
        agentId: 'backup-agent', cronExpr: '@yearly' });
      const ids = [];
      for (const input of ['one', 'two', 'three']) {
        const run = await client.schedule.runNow(job.id, { input });
        await ended(client, run.id);
        ids.push(run.id);
      }
      const bare = await client.schedule.runNow(job.id); // no input
      assert.equal((await ended(client, bare.id)).output, 'backed up\n');
      ids.push(bare.id);
      const status = await client.schedule.getStatus(job.id);
      assert.deepEqual(status.recent_runs.map((r) => r.id), [...ids].reverse());
      assert.equal(status.run_count, 4);
      const two = await client.schedule.getStatus(job.id, { history: 2 });
      assert.deepEqual(two.recent_runs.map((r) => r.id), [ids[3], ids[2]]);
      assert.deepEqual((await client.schedule.getStatus(job.id, { history: 0 })).recent_runs, []);
      const limited = await client.schedule.getHistory(job.id, { limit: 2 });
      assert.deepEqual(limited.map((r) => r.id), [ids[3], ids[2]]);
      assert.equal(limited[0].input_preview, null);
      assert.equal(limited[1].input_preview, 'three');
      assert.equal((await client.schedule.getHistory(job.id)).length, 4);
      assert.deepEqual(await client.schedule.getHistory(job.id, { status: 'failed' }), []);
      const run = await client.schedule.getRun(ids[0]);
      assert.equal(run.input, 'one');
      assert.equal(run.output, 'backed up\none');
      assert.equal(run.job_id, job.id);
      await client.schedule.delete(job.id);
    });

    test('reset re-arms a job its failures sent to dead_letter', async () => {
      const client = connect();
      const job = await client.schedule.create({ name: `flaky-${tag}`, agentId: 'fail',
        cronExpr: '* * * * * *', maxRetries: 0 });
      await waitFor(async () => (await client.schedule.get(job.id)).status === 'dead_letter',
        { what: 'dead_letter' });
      const [failed] = await client.schedule.getHistory(job.id, { status: 'failed', limit: 1 });
      assert.match(failed.error_message, /exit status 3: broken/);
      const reset = await client.schedule.reset(job.id);
      assert.equal(reset.status, 'active');
      await client.schedule.delete(job.id);
    });

    test('cancelRun stops a long-running run', async () => {
      const client = connect();
      const job = await client.schedule.create({ name: `hang-${tag}`, agentId: 'hang',
        cronExpr: '@yearly' });
      const queued = await client.schedule.runNow(job.id);
      await reaches(client, queued.id, 'running');
      const cancelling = await client.schedule.cancelRun(queued.id);
      assert.equal(cancelling.id, queued.id);
      assert.ok(['running', 'cancelled'].includes(cancelling.status), cancelling.status);
      const cancelled = await reaches(client, queued.id, 'cancelled');
      assert.equal(cancelled.output, 'waiting\n');
      await assert.rejects(client.schedule.cancelRun(queued.id),
        (err) => err instanceof SymbidError && err.status === 409 && err.code === 'conflict');
      await client.schedule.delete(job.id);
    });

    test('runs.approve and runs.deny decide runs awaiting approval; audit.query', async () => {
      const client = connect();
      const since = new Date(Date.now() - 1000);
      const name = `guarded-${tag}`;
      const job = await client.schedule.create({ name, agentId: 'backup-agent',
        cronExpr: '@yearly', policy: { requireApproval: true, approvers: [actor, 'alice'] } });

      const first = await client.schedule.runNow(job.id, { input: 'deploy' });
      await reaches(client, first.id, 'awaiting_approval');
      const pending = await client.runs.pending();
      const listed = pending.find((r) => r.id === first.id);
      assert.equal(listed.job_name, name);
      assert.deepEqual(listed.approvers, [actor, 'alice']);
      assert.ok(listed.approval_deadline);
      const approved = await client.runs.approve(first.id, { comment: 'looks right' });
      assert.equal(approved.id, first.id);
      assert.ok(['pending', 'running', 'succeeded'].includes(approved.status), approved.status);
      const done = await reaches(client, first.id, 'succeeded');
      assert.equal(done.approved_by, actor);
      assert.equal(done.approval_note, 'looks right');
      assert.equal(done.output, 'backed up\ndeploy');

      const second = await client.schedule.runNow(job.id);
      await reaches(client, second.id, 'awaiting_approval');
      const denied = await client.runs.deny(second.id, { reason: 'not today' });
      assert.equal(denied.status, 'denied');
      assert.equal(denied.approved_by, actor);
      assert.equal(denied.approval_note, 'not today');
      assert.ok(!(await client.runs.pending()).some((r) => r.job_id === job.id));

      const third = await client.schedule.runNow(job.id);
      await reaches(client, third.id, 'awaiting_approval');
      const plain = await client.runs.approve(third.id); // no comment
      assert.equal(plain.approval_note, null);
      await reaches(client, third.id, 'succeeded');

      const granted = await client.audit.query({ type: 'ApprovalGranted', job: name });
      assert.deepEqual(granted.map((e) => e.run_id), [third.id, first.id]); // newest first
      assert.equal(granted[0].actor, actor);
      assert.equal(granted[0].job_id, job.id);
      const refused = await client.audit.query({ type: 'ApprovalDenied', job: job.id,
        since, until: new Date(Date.now() + 60_000) });
      assert.deepEqual(refused.map((e) => e.run_id), [second.id]);
      const everything = await client.audit.query({ job: name, since: since.toISOString() });
      assert.ok(everything.some((e) => e.type === 'CronJobCreated' && e.actor === actor));
      assert.equal((await client.audit.query({ job: name, limit: 2 })).length, 2);
      assert.deepEqual(await client.audit.query({ job: name, until: since }), []);
      assert.ok((await client.audit.query({ actor, limit: 1000 })).length >= 5);
      await client.schedule.delete(job.id);
    });

    test('health, from client.schedule and from the client', async () => {
      const client = connect();
      const health = await client.schedule.health();
      assert.equal(health.status, 'healthy');
      assert.deepEqual(Object.keys(health.metrics).sort(),
        ['avg_execution_time_ms', 'runs_failed', 'runs_succeeded', 'runs_total']);
      assert.ok(Number.isInteger(health.metrics.runs_total));
      assert.equal((await client.health()).status, 'healthy');
    });
  });
}
