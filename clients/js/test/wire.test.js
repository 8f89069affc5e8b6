// The official Symbiont JavaScript SDK's wire contract, against a real daemon's dialect at
// /symbiont/api/v1. The requests are the ones its ScheduleClient (package symbi-agent,
// github.com/ThirdKeyAI/symbiont-sdk-js, packages/agent/src/ScheduleClient.ts) makes with
// fetch: `${runtimeApiUrl}${endpoint}`, headers Content-Type: application/json and
// Authorization: Bearer <apiKey> on every request, a JSON body only when it has one
// (create, update); pause, resume and trigger are bodiless POSTs. Its answers are checked
// against the SDK's response types (packages/types/src/schedule.ts, its zod schemas): the
// same keys, no more and no fewer, each of its type.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Daemon, TOKEN, waitFor } from './daemon.js';

// The SDK's response types: key -> 'string' | 'number' | 'boolean', '?' when nullable.
const SUMMARY = { job_id: 'string', name: 'string', cron_expression: 'string',
  timezone: 'string', status: 'string', enabled: 'boolean', next_run: 'string?',
  run_count: 'number' };
const DETAIL = { job_id: 'string', name: 'string', cron_expression: 'string',
  timezone: 'string', status: 'string', enabled: 'boolean', one_shot: 'boolean',
  next_run: 'string?', last_run: 'string?', run_count: 'number', failure_count: 'number',
  created_at: 'string', updated_at: 'string' };
const CREATED = { job_id: 'string', next_run: 'string?', status: 'string' };
const ACTION = { job_id: 'string', action: 'string', status: 'string' };
const DELETED = { job_id: 'string', deleted: 'boolean' };
const RUN_ENTRY = { run_id: 'string', started_at: 'string', completed_at: 'string?',
  status: 'string', error: 'string?', execution_time_ms: 'number?' };
const HEALTH = { is_running: 'boolean', store_accessible: 'boolean', jobs_total: 'number',
  jobs_active: 'number', jobs_paused: 'number', jobs_dead_letter: 'number',
  global_active_runs: 'number', max_concurrent: 'number', runs_total: 'number',
  runs_succeeded: 'number', runs_failed: 'number', average_execution_time_ms: 'number',
  longest_run_ms: 'number' };

function shaped(value, shape, what) {
  assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value),
    `${what}: not an object`);
  assert.deepEqual(Object.keys(value).sort(), Object.keys(shape).sort(), `${what}: its keys`);
  for (const [key, type] of Object.entries(shape)) {
    const nullable = type.endsWith('?');
    if (nullable && value[key] === null) continue;
    assert.equal(typeof value[key], type.replace('?', ''), `${what}.${key}: ${value[key]}`);
  }
  return value;
}

let daemon;
let runtimeApiUrl;

before(async () => {
  daemon = await new Daemon().start();
  runtimeApiUrl = `${daemon.baseUrl}/symbiont/api/v1`;
});

after(async () => {
  await daemon?.stop();
});

/** One request as the SDK's makeRequest sends it; the response (status, JSON). */
async function sdk(endpoint, { method = 'GET', body, apiKey = TOKEN } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const init = { method, headers };
  if (body && method !== 'GET') init.body = JSON.stringify(body);
  const response = await fetch(`${runtimeApiUrl}${endpoint}`, init);
  const text = await response.text();
  return { status: response.status, ok: response.ok, data: text ? JSON.parse(text) : null };
}

async function ok(endpoint, options) {
  const answer = await sdk(endpoint, options);
  assert.ok(answer.ok, `${options?.method ?? 'GET'} ${endpoint}: ${answer.status} ` +
    JSON.stringify(answer.data));
  return answer.data;
}

describe("the official JS SDK's ScheduleClient against /symbiont/api/v1", () => {
  test('every request it makes, with its exact paths, bodies and bearer token', async () => {
    // createSchedule: POST /schedules with a CreateScheduleRequest
    const created = shaped(await ok('/schedules', { method: 'POST', body: {
      name: 'sdk-report', cron_expression: '0 9 * * *', agent_name: 'backup-agent',
      timezone: 'Europe/Berlin', policy_ids: [], one_shot: false,
    } }), CREATED, 'CreateScheduleResponse');
    assert.equal(created.status, 'active');
    assert.ok(created.next_run);
    const id = created.job_id;
    // only the required fields
    const minimal = shaped(await ok('/schedules', { method: 'POST', body: {
      name: 'sdk-minimal', cron_expression: '0 0 * * *', agent_name: 'backup-agent',
    } }), CREATED, 'CreateScheduleResponse');

    // listSchedules: GET /schedules
    const listed = await ok('/schedules');
    assert.ok(Array.isArray(listed));
    listed.forEach((row, i) => shaped(row, SUMMARY, `ScheduleSummary[${i}]`));
    const row = listed.find((s) => s.job_id === id);
    assert.deepEqual([row.name, row.cron_expression, row.timezone, row.enabled, row.run_count],
      ['sdk-report', '0 9 * * *', 'Europe/Berlin', true, 0]);

    // getSchedule: GET /schedules/{id}
    const detail = shaped(await ok(`/schedules/${id}`), DETAIL, 'ScheduleDetail');
    assert.deepEqual([detail.cron_expression, detail.one_shot, detail.last_run],
      ['0 9 * * *', false, null]);

    // updateSchedule: PUT /schedules/{id} with an UpdateScheduleRequest
    const updated = shaped(await ok(`/schedules/${id}`, { method: 'PUT', body: {
      cron_expression: '0 10 * * *', timezone: 'America/New_York',
    } }), DETAIL, 'ScheduleDetail');
    assert.deepEqual([updated.cron_expression, updated.timezone],
      ['0 10 * * *', 'America/New_York']);

    // pauseSchedule / resumeSchedule: bodiless POSTs
    const paused = shaped(await ok(`/schedules/${id}/pause`, { method: 'POST' }), ACTION,
      'ScheduleActionResponse');
    assert.deepEqual(paused, { job_id: id, action: 'pause', status: 'paused' });
    assert.equal(shaped(await ok(`/schedules/${id}`), DETAIL, 'ScheduleDetail').enabled, false);
    const resumed = shaped(await ok(`/schedules/${id}/resume`, { method: 'POST' }), ACTION,
      'ScheduleActionResponse');
    assert.deepEqual(resumed, { job_id: id, action: 'resume', status: 'active' });

    // triggerSchedule, three times; getScheduleHistory honours limit (SDK default 50)
    for (let i = 0; i < 3; i += 1) {
      const triggered = shaped(await ok(`/schedules/${id}/trigger`, { method: 'POST' }),
        ACTION, 'ScheduleActionResponse');
      assert.deepEqual([triggered.job_id, triggered.action], [id, 'trigger']);
      await waitFor(async () => {
        const { history } = await ok(`/schedules/${id}/history?limit=50`);
        return history.length === i + 1 && history.every((h) => h.completed_at);
      }, { what: `trigger ${i + 1} to end` });
    }
    const all = await ok(`/schedules/${id}/history?${new URLSearchParams({ limit: '50' })}`);
    assert.deepEqual(Object.keys(all).sort(), ['history', 'job_id']);
    assert.equal(all.job_id, id);
    assert.equal(all.history.length, 3);
    all.history.forEach((entry, i) => {
      shaped(entry, RUN_ENTRY, `ScheduleRunEntry[${i}]`);
      assert.equal(entry.status, 'succeeded');
      assert.equal(entry.error, null);
      assert.ok(Number.isInteger(entry.execution_time_ms));
    });
    const two = await ok(`/schedules/${id}/history?limit=2`);
    assert.deepEqual(two.history.map((h) => h.run_id), all.history.slice(0, 2).map((h) => h.run_id));
    assert.equal((await ok(`/schedules/${id}/history?limit=1`)).history.length, 1);
    assert.equal((await ok(`/schedules/${id}/history`)).history.length, 3);
    assert.equal((await sdk(`/schedules/${id}/history?limit=0`)).status, 400);
    assert.equal(shaped(await ok(`/schedules/${id}`), DETAIL, 'ScheduleDetail').run_count, 3);

    // getScheduleNextRuns honours count (SDK default 10)
    for (const count of [10, 5, 1]) {
      const next = await ok(`/schedules/${id}/next-runs?${new URLSearchParams({ count: String(count) })}`);
      assert.deepEqual(Object.keys(next).sort(), ['job_id', 'next_runs']);
      assert.equal(next.job_id, id);
      assert.equal(next.next_runs.length, count);
      assert.ok(next.next_runs.every((t) => typeof t === 'string' && !Number.isNaN(Date.parse(t))));
      assert.ok(next.next_runs.every((t, i, a) => i === 0 || Date.parse(a[i - 1]) < Date.parse(t)));
    }
    const five = await ok(`/schedules/${minimal.job_id}/next-runs?count=5`);
    assert.equal(five.next_runs.length, 5);
    assert.ok(five.next_runs.every((t, i, a) => i === 0 ||
      Date.parse(t) - Date.parse(a[i - 1]) === 86_400_000)); // UTC: no DST

    // getSchedulerHealth: GET /health/scheduler
    const health = shaped(await ok('/health/scheduler'), HEALTH, 'SchedulerHealthResponse');
    assert.equal(health.is_running, true);
    assert.equal(health.store_accessible, true);
    assert.equal(health.jobs_total, 2);
    assert.ok(health.runs_succeeded >= 3); // (a slot of its own may come due meanwhile)

    // deleteSchedule: DELETE /schedules/{id} (the SDK discards the answer; it is shaped)
    for (const job of [id, minimal.job_id]) {
      const deleted = shaped(await ok(`/schedules/${job}`, { method: 'DELETE' }), DELETED,
        'DeleteScheduleResponse');
      assert.deepEqual(deleted, { job_id: job, deleted: true });
    }
    assert.deepEqual(await ok('/schedules'), []);
  });

  test('one_shot, and what the dialect refuses, as the SDK would see it', async () => {
    const once = await ok('/schedules', { method: 'POST', body: {
      name: 'sdk-once', cron_expression: '0 9 * * *', agent_name: 'backup-agent',
      one_shot: true } });
    assert.equal(shaped(await ok(`/schedules/${once.job_id}`), DETAIL, 'ScheduleDetail').one_shot,
      true);
    const named = await sdk('/schedules', { method: 'POST', body: { name: 'sdk-policy',
      cron_expression: '0 9 * * *', agent_name: 'backup-agent', policy_ids: ['policy-1'] } });
    assert.equal(named.status, 400);
    assert.equal(named.data.error.field, 'policy_ids');
    assert.equal((await sdk('/schedules/no-such-job')).status, 404);
    assert.equal((await sdk('/schedules/no-such-job/pause', { method: 'POST' })).status, 404);
    assert.equal((await sdk('/schedules', { method: 'POST', body: { name: 'x',
      cron_expression: 'nope', agent_name: 'backup-agent' } })).status, 400);
    await ok(`/schedules/${once.job_id}`, { method: 'DELETE' });
  });

  test('without the bearer token, or with a wrong one: 401', async () => {
    for (const apiKey of [null, 'wrong']) {
      for (const [endpoint, method] of [['/schedules', 'GET'], ['/schedules', 'POST'],
        ['/health/scheduler', 'GET'], ['/schedules/x/trigger', 'POST']]) {
        const answer = await sdk(endpoint, { method, apiKey, body: endpoint === '/schedules' &&
          method === 'POST' ? { name: 'x', cron_expression: '@daily', agent_name: 'backup-agent' }
          : undefined });
        assert.equal(answer.status, 401, `${method} ${endpoint}`);
        assert.equal(answer.data.error.code, 'unauthorized');
      }
    }
  });
});
