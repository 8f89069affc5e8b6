// The seed guide's JavaScript example in TypeScript, checked by `tsc --noEmit` (the
// types test): what a Node service writes against @symbid/client compiles, and what
// the API would refuse does not.

import { SymbidError, SymbiontClient } from '@symbid/client';
import type { HistoryRun, Job, JobStatusView, NextRuns, Run } from '@symbid/client';

const client = new SymbiontClient({
  baseUrl: 'http://localhost:8080',
  apiKey: process.env.SYMBI_API_KEY,
});
const local = new SymbiontClient({ socketPath: '/run/symbid/control.sock', timeoutMs: 5000 });

export async function seed(): Promise<void> {
  // 创建调度任务
  const job: Job = await client.schedule.create({
    name: 'daily-backup',
    agentId: 'backup-agent',
    cronExpr: '0 2 * * *',
    sessionMode: 'ephemeral_with_summary',
    delivery: ['webhook'],
    webhookUrl: 'https://backup.example.com/notify',
  });
  console.log(`Created job: ${job.id}`);

  // many at once, in one transaction, or none (err.errors lists the bad ones)
  try {
    const made: Job[] = await client.schedule.createMany([
      { name: 'a', agentId: 'backup-agent', cronExpr: '@hourly' },
      { name: 'b', agentId: 'backup-agent', at: new Date() },
    ]);
    console.log(made.length);
  } catch (err) {
    if (err instanceof SymbidError && err.errors !== null) {
      for (const bad of err.errors) console.log(bad.index, bad.field, bad.message);
    }
  }

  // 列出活跃任务
  const activeJobs = await client.schedule.list({ status: 'active' });
  console.log(`Active jobs: ${activeJobs.length}`);

  // 获取任务状态
  const status: JobStatusView = await client.schedule.getStatus(job.id);
  console.log(`Next run: ${status.next_run}`);
  const recent: HistoryRun[] = status.recent_runs;
  console.log(recent.length);

  // 触发立即运行
  const queued: Run = await client.schedule.runNow(job.id, { input: 'Backup database' });
  console.log(queued.status === 'pending');

  // 暂停任务
  await client.schedule.pause(job.id);

  // 查看历史记录
  const history = await client.schedule.getHistory(job.id, { limit: 10 });
  history.forEach((run) => {
    console.log(`Run ${run.id}: ${run.status} (${run.execution_time_ms}ms)`);
  });

  // 恢复任务
  await client.schedule.resume(job.id);

  // 删除任务
  const deleted = await client.schedule.delete(job.id);
  const gone: true = deleted.deleted;
  console.log(gone);
}

export async function everyMethod(): Promise<void> {
  const job = await local.schedule.create({
    name: 'guarded',
    agentId: 'deployer',
    at: new Date(Date.now() + 3_600_000),
    timezone: 'Europe/Berlin',
    heartbeat: { enabled: false, contextMode: 'fully_ephemeral', maxIterations: 1 },
    deliveryConfig: { webhookHeaders: { 'X-Team': 'ops' }, webhookSecret: '${HOOK_SECRET}' },
    policy: {
      requireApproval: true,
      approvers: ['alice'],
      maxRuntime: '5m',
      allowedHours: { start: '01:00', end: '05:00' },
      approvalTimeout: 3600,
    },
    maxRetries: null,
    catchUp: 'skip',
    allowPast: false,
  });
  const got: Job = await local.schedule.get(job.name);
  await local.schedule.update(got.id, { cronExpr: '@daily', policy: { allowedHours: null } });
  await local.schedule.list({ agentId: 'deployer', idPrefix: got.id.slice(0, 8), all: true });
  await local.schedule.getStatus(got.id, { history: 0 });
  const run = await local.schedule.runNow(got.id);
  await local.runs.pending();
  await local.runs.approve(run.id, { comment: 'ok' });
  await local.runs.deny(run.id, { reason: 'no' });
  await local.schedule.cancelRun(run.id);
  const one: Run = await local.schedule.getRun(run.id);
  const ms: number | null = one.execution_time_ms;
  console.log(ms, one.output, one.deliveries.map((d) => d.receipts));
  const next: NextRuns = await local.schedule.nextRuns(got.id, { count: 3 });
  console.log(next.next_runs.join(', '));
  await local.schedule.getHistory(got.id, { status: 'failed', limit: 5 });
  await local.schedule.reset(got.id);
  const events = await local.audit.query({ type: 'ApprovalGranted', job: got.name,
    since: new Date('2026-01-01'), until: '2026-02-01', limit: 10 });
  console.log(events[0]?.actor, events[0]?.details);
  const health = await local.health();
  console.log(health.status, (await local.schedule.health()).metrics.runs_total);
  try {
    await local.schedule.get('nope');
  } catch (err) {
    if (err instanceof SymbidError) {
      const status: number | null = err.status;
      const field: string | null = err.field;
      console.log(status, err.code, field, err.message);
    }
  }
}

export async function refused(): Promise<void> {
  // @ts-expect-error: an unknown key
  await client.schedule.create({ name: 'x', agentId: 'a', cronExpr: '@daily', colour: 'red' });
  // @ts-expect-error: the API's snake_case names are results, not arguments
  await client.schedule.create({ name: 'x', agent_id: 'a', cron_expr: '@daily' });
  // @ts-expect-error: name and agentId are required to create
  await client.schedule.create({ cronExpr: '@daily' });
  // @ts-expect-error: not a session mode
  await client.schedule.create({ name: 'x', agentId: 'a', sessionMode: 'forever' });
  // @ts-expect-error: allowPast only applies when a job is created
  await client.schedule.update('x', { allowPast: true });
  // @ts-expect-error: an unknown policy key
  await client.schedule.update('x', { policy: { approver: ['a'] } });
  // @ts-expect-error: runNow takes input only
  await client.schedule.runNow('x', { wait: true });
  // @ts-expect-error: history takes limit and status
  await client.schedule.getHistory('x', { count: 3 });
  // @ts-expect-error: not a run status
  await client.schedule.getHistory('x', { status: 'done' });
  // @ts-expect-error: approve takes a comment, deny a reason
  await client.runs.approve('r', { reason: 'x' });
  // @ts-expect-error: an unknown client option
  new SymbiontClient({ url: 'http://localhost:8080' });
  const job = await client.schedule.get('x');
  // @ts-expect-error: results keep the API's names
  console.log(job.nextRun);
}
