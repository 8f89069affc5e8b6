// @symbid/client: the JavaScript client of symbid's native API (/api/v1), over the Unix
// socket or TCP. The surface follows the seed guide's JavaScript SDK:
//
//   const client = new SymbiontClient({ baseUrl: 'http://localhost:8080', apiKey });
//   const client = new SymbiontClient({ socketPath: '/run/symbid/control.sock' });
//   const job = await client.schedule.create({ name, agentId, cronExpr: '0 2 * * *' });
//   const status = await client.schedule.getStatus(job.id);   // status.next_run
//
// Arguments are camelCase and are mapped to the API's snake_case names; a key this client
// does not know is refused with a TypeError naming it, before any request is sent (symbid
// accepts nothing it would silently ignore). Results are the API's JSON as it is, with the
// API's field names. API errors are thrown as SymbidError (status, code, field); a daemon
// that cannot be reached, or does not answer within timeoutMs, is a SymbidError too (code
// "unavailable" or "timeout", status null) naming the URL or the socket.
//
// Only node:http and node:https are used: no runtime dependencies.

import http from 'node:http';
import https from 'node:https';

export const DEFAULT_SOCKET = '/run/symbid/control.sock';
export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1; // setTimeout's limit: beyond it, it fires at once
const API = '/api/v1';

/** An error answered by symbid's API, or a daemon that could not be reached. */
export class SymbidError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number|null, code?: string, field?: string|null, method?: string,
   *          url?: string, errors?: object[]|null, cause?: unknown}} [details]
   */
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SymbidError';
    /** The HTTP status, or null when no answer came (unreachable, timeout). */
    this.status = details.status ?? null;
    /** The API's error code (not_found, invalid_input, unauthorized, ...). */
    this.code = details.code ?? 'error';
    /** The request field or parameter the error is about, in the API's name, or null. */
    this.field = details.field ?? null;
    /** The request that failed: its method and its URL (or socket and path). */
    this.method = details.method ?? null;
    this.url = details.url ?? null;
    /** A refused batch (schedule.createMany): every bad element, each with its index,
     * code, field and message, as the API gives them; null otherwise. */
    this.errors = details.errors ?? null;
  }
}

// --- arguments --------------------------------------------------------------------------

function kind(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function snakeToCamel(key) {
  return key.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/** The options object of a method (undefined: none), refused unless a plain object. */
function optionsOf(what, options) {
  if (options === undefined) return {};
  if (!isPlainObject(options)) {
    throw new TypeError(`${what}: expected an options object, got ${kind(options)}`);
  }
  return options;
}

/** Refuse the keys of ``given`` that ``allowed`` does not name (what: where, for the message). */
function refuseUnknown(what, given, allowed) {
  const unknown = Object.keys(given).filter((k) => !Object.hasOwn(allowed, k));
  if (unknown.length === 0) return;
  const hints = unknown.map((k) => {
    const camel = snakeToCamel(k);
    return camel !== k && Object.hasOwn(allowed, camel) ? `${k} (did you mean ${camel}?)` : k;
  });
  throw new TypeError(`${what}: unknown ${unknown.length === 1 ? 'key' : 'keys'} ` +
    `${hints.join(', ')}; it takes ${Object.keys(allowed).join(', ')}`);
}

function wireValue(value) {
  return value instanceof Date ? value.toISOString() : value;
}

/**
 * ``given`` (camelCase keys) in the API's names, by ``schema``: key -> wire name, or
 * [wire name, nested schema] for an object whose keys are mapped too. Undefined values
 * are left out; null is sent (it clears a field). Unknown keys are refused.
 */
function toWire(what, given, schema) {
  refuseUnknown(what, given, schema);
  const out = {};
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    const rule = schema[key];
    if (Array.isArray(rule)) {
      const [wire, nested] = rule;
      out[wire] = isPlainObject(value) ? toWire(`${what}.${key}`, value, nested) : value;
    } else {
      out[rule] = wireValue(value);
    }
  }
  return out;
}

const ALLOWED_HOURS = { start: 'start', end: 'end', timezone: 'timezone' };
const POLICY = {
  requireApproval: 'require_approval',
  approvers: 'approvers',
  maxRuntime: 'max_runtime',
  requireCapabilities: 'require_capabilities',
  allowedHours: ['allowed_hours', ALLOWED_HOURS],
  allowedEnvironments: 'allowed_environments',
  requireAgentPin: 'require_agent_pin',
  approvalTimeout: 'approval_timeout',
};
const HEARTBEAT = { enabled: 'enabled', contextMode: 'context_mode', maxIterations: 'max_iterations' };
const DELIVERY_CONFIG = {
  webhookUrl: 'webhook_url',
  webhookHeaders: 'webhook_headers', // header names are the user's: not mapped
  slackChannel: 'slack_channel',
  emailRecipients: 'email_recipients',
  webhookSecret: 'webhook_secret',
};
/** A job's definition fields (POST and PUT /api/v1/schedule...). */
const JOB = {
  name: 'name',
  agentId: 'agent_id',
  cronExpr: 'cron_expr',
  at: 'at',
  timezone: 'timezone',
  sessionMode: 'session_mode',
  heartbeat: ['heartbeat', HEARTBEAT],
  delivery: 'delivery',
  deliveryConfig: ['delivery_config', DELIVERY_CONFIG],
  ...DELIVERY_CONFIG,
  alert: 'alert',
  alertCooldown: 'alert_cooldown',
  alertIfNoSuccessWithin: 'alert_if_no_success_within',
  policy: ['policy', POLICY],
  maxConcurrent: 'max_concurrent',
  maxRetries: 'max_retries',
  jitterSeconds: 'jitter_seconds',
  catchUp: 'catch_up',
  catchUpLimit: 'catch_up_limit',
  input: 'input',
  agentPinJwt: 'agent_pin_jwt',
};
const JOB_CREATE = { ...JOB, allowPast: 'allow_past' };

/** Query parameters from ``given`` by ``schema``; values are strings, numbers, booleans
 * (or Dates, sent as RFC 3339). */
function toQuery(what, given, schema) {
  const wire = toWire(what, given, schema);
  for (const [key, value] of Object.entries(wire)) {
    if (value === null) {
      delete wire[key];
    } else if (!['string', 'number', 'boolean'].includes(typeof value)) {
      const camel = Object.keys(schema).find((k) => schema[k] === key) ?? key;
      throw new TypeError(`${what}: ${camel} must be a string, a number or a boolean, ` +
        `got ${kind(value)}`);
    }
  }
  return wire;
}

function idOf(what, id, name = 'id') {
  if (typeof id !== 'string' || id === '') {
    throw new TypeError(`${what}: ${name} must be a non-empty string, got ${kind(id)}`);
  }
  return encodeURIComponent(id);
}

// --- transport --------------------------------------------------------------------------

const CLIENT_OPTIONS = ['baseUrl', 'apiKey', 'socketPath', 'timeoutMs'];

class Transport {
  constructor(options) {
    if (!isPlainObject(options)) {
      throw new TypeError(`SymbiontClient: expected an options object, got ${kind(options)}`);
    }
    refuseUnknown('SymbiontClient', options, Object.fromEntries(CLIENT_OPTIONS.map((k) => [k, k])));
    const { baseUrl, apiKey, socketPath, timeoutMs } = options;
    if (baseUrl != null && socketPath != null) {
      throw new TypeError('SymbiontClient: give baseUrl (TCP) or socketPath (the Unix ' +
        'socket), not both');
    }
    for (const [name, value] of [['baseUrl', baseUrl], ['apiKey', apiKey],
      ['socketPath', socketPath]]) {
      if (value != null && (typeof value !== 'string' || value === '')) {
        throw new TypeError(`SymbiontClient: ${name} must be a non-empty string, got ` +
          `${kind(value)}`);
      }
    }
    if (timeoutMs != null && !(Number.isFinite(timeoutMs) && timeoutMs > 0 &&
      timeoutMs <= MAX_TIMEOUT_MS)) {
      throw new TypeError(`SymbiontClient: timeoutMs must be a number of milliseconds ` +
        `from 1 to ${MAX_TIMEOUT_MS}, got ${String(timeoutMs)}`);
    }
    this.timeoutMs = timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.apiKey = apiKey ?? null;
    if (baseUrl != null) {
      let url;
      try {
        url = new URL(baseUrl);
      } catch {
        throw new TypeError(`SymbiontClient: baseUrl ${JSON.stringify(baseUrl)} is not a URL; ` +
          'expected http://HOST:PORT or https://...');
      }
      if (!['http:', 'https:'].includes(url.protocol) || !url.hostname) {
        throw new TypeError(`SymbiontClient: baseUrl ${JSON.stringify(baseUrl)}: expected ` +
          'http://HOST:PORT or https://...');
      }
      if (url.username || url.password || url.search || url.hash) {
        throw new TypeError(`SymbiontClient: baseUrl ${JSON.stringify(baseUrl)}: give ` +
          'scheme, host, port and path only (the token goes in apiKey)');
      }
      // with or without the API's /api/v1, which the daemon prints
      let prefix = url.pathname.replace(/\/+$/, '');
      if (prefix.endsWith(API)) prefix = prefix.slice(0, -API.length);
      this.url = url;
      this.prefix = prefix;
      this.socketPath = null;
      this.baseUrl = `${url.protocol}//${url.host}${prefix}`;
    } else {
      if (this.apiKey !== null) {
        throw new TypeError('SymbiontClient: apiKey is sent over TCP only (give baseUrl ' +
          'with it); the socket is authorised by its file permissions');
      }
      this.socketPath = socketPath ?? (process.env.SYMBI_SOCKET || DEFAULT_SOCKET);
      this.baseUrl = null;
      this.prefix = '';
    }
  }

  /** Where a request goes, for messages: its URL, or the socket and its path. */
  where(target) {
    return this.baseUrl !== null ? `${this.baseUrl}${target}`
      : `the socket ${this.socketPath} (${target})`;
  }

  /**
   * One request; the answer's JSON (null if it has none). Error statuses throw SymbidError.
   * @param {string} method
   * @param {string} path  under the API root, e.g. /api/v1/schedule
   * @param {{body?: unknown, query?: Record<string, string|number|boolean>}} [request]
   */
  async request(method, path, { body, query } = {}) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) search.append(key, String(value));
    const qs = search.toString(); // (URLSearchParams.size is newer than Node 18.0)
    const target = this.prefix + path + (qs ? `?${qs}` : '');
    const shown = this.where(path + (qs ? `?${qs}` : ''));
    const headers = { Accept: 'application/json' };
    let payload = null;
    if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body), 'utf8');
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    if (this.apiKey !== null) headers.Authorization = `Bearer ${this.apiKey}`;
    const options = { method, path: target, headers, agent: false };
    let transport = http;
    if (this.socketPath !== null) {
      Object.assign(options, { socketPath: this.socketPath, host: 'localhost' });
    } else {
      Object.assign(options, { hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
        port: this.url.port || undefined });
      if (this.url.protocol === 'https:') transport = https;
    }
    const answer = await this.exchange(transport, options, payload, method, shown);
    return this.check(answer, method, shown);
  }

  exchange(transport, options, payload, method, shown) {
    return new Promise((resolve, reject) => {
      let timedOut = false;
      let settled = false;
      const finish = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn(value);
      };
      const failed = (cause) => {
        if (timedOut) {
          finish(reject, new SymbidError(`no answer from symbid at ${shown} within ` +
            `${this.timeoutMs} ms (timeoutMs)`, { code: 'timeout', method, url: shown, cause }));
          return;
        }
        const reason = cause && cause.code && !String(cause.message).includes(cause.code)
          ? `${cause.code} ${cause.message}` : String(cause && cause.message || cause);
        const hint = this.socketPath !== null
          ? '; is symbid running (systemctl status symbid)? Give socketPath, or set ' +
            'SYMBI_SOCKET, for another socket' : '';
        finish(reject, new SymbidError(`cannot reach symbid at ${shown}: ${reason}${hint}`,
          { code: 'unavailable', method, url: shown, cause }));
      };
      const req = transport.request(options, (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', failed);
        res.on('aborted', () => failed(new Error('the answer was cut off')));
        res.on('end', () => finish(resolve, {
          status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks),
        }));
      });
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(new Error(`timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      req.on('error', failed);
      req.end(payload ?? undefined);
    });
  }

  check({ status, headers, body }, method, shown) {
    const text = body.toString('utf8');
    let data = null;
    if (text.trim() !== '' && String(headers['content-type'] ?? '').includes('json')) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (status >= 400) {
      const error = isPlainObject(data) && isPlainObject(data.error) ? data.error : {};
      const message = typeof error.message === 'string' && error.message
        ? error.message : `HTTP ${status} from ${shown}`;
      throw new SymbidError(message, {
        status, code: typeof error.code === 'string' ? error.code : 'error',
        field: typeof error.field === 'string' ? error.field : null, method, url: shown,
        errors: Array.isArray(error.errors) ? error.errors : null,
      });
    }
    if (data === null && text.trim() !== '') {
      throw new SymbidError(`symbid at ${shown} answered HTTP ${status} with a body that is ` +
        'not JSON', { status, code: 'bad_response', method, url: shown });
    }
    return data;
  }
}

// --- the API ----------------------------------------------------------------------------

const LIST = { status: 'status', agentId: 'agent_id', idPrefix: 'id_prefix', all: 'all' };
const STATUS = { history: 'history' };
const RUN_NOW = { input: 'input' };
const HISTORY = { limit: 'limit', status: 'status' };
const NEXT_RUNS = { count: 'count' };
const APPROVE = { comment: 'comment' };
const DENY = { reason: 'reason' };
const AUDIT = { type: 'type', job: 'job', actor: 'actor', since: 'since', until: 'until',
  limit: 'limit' };

/** ``client.schedule``: jobs (/api/v1/schedule) and their runs (/api/v1/runs). */
export class ScheduleClient {
  #t;

  constructor(transport) {
    this.#t = transport;
  }

  static #job(what, id, suffix = '') {
    return `${API}/schedule/${idOf(what, id, 'jobId')}${suffix}`;
  }

  static #run(what, id, suffix = '') {
    return `${API}/runs/${idOf(what, id, 'runId')}${suffix}`;
  }

  /** POST /api/v1/schedule: the job created. */
  async create(fields) {
    if (!isPlainObject(fields)) {
      throw new TypeError(`schedule.create: expected the job's fields, got ${kind(fields)}`);
    }
    return this.#t.request('POST', `${API}/schedule`,
      { body: toWire('schedule.create', fields, JOB_CREATE) });
  }

  /** POST /api/v1/schedule with an array: every job created in one transaction, or
   * none (a SymbidError whose field names the first bad element, `[3].cron_expr`, and
   * whose errors list them all); the created jobs in their order. */
  async createMany(jobs) {
    if (!Array.isArray(jobs) || jobs.length === 0) {
      throw new TypeError('schedule.createMany: expected a non-empty array of jobs\' ' +
        `fields, got ${Array.isArray(jobs) ? 'an empty array' : kind(jobs)}`);
    }
    const body = jobs.map((fields, i) => {
      const what = `schedule.createMany[${i}]`;
      if (!isPlainObject(fields)) {
        throw new TypeError(`${what}: expected the job's fields, got ${kind(fields)}`);
      }
      return toWire(what, fields, JOB_CREATE);
    });
    return this.#t.request('POST', `${API}/schedule`, { body });
  }

  /** GET /api/v1/schedule: jobs by name, filtered by status and agentId. */
  async list(options) {
    const query = toQuery('schedule.list', optionsOf('schedule.list', options), LIST);
    return this.#t.request('GET', `${API}/schedule`, { query });
  }

  /** GET /api/v1/schedule/{id} (an id or a name). */
  async get(jobId) {
    return this.#t.request('GET', ScheduleClient.#job('schedule.get', jobId));
  }

  /** The job (GET /api/v1/schedule/{id}) with its ``recent_runs``, newest first (GET
   * .../history?limit=history, default 5; 0: none). */
  async getStatus(jobId, options) {
    const given = optionsOf('schedule.getStatus', options);
    refuseUnknown('schedule.getStatus', given, STATUS);
    const history = given.history ?? 5;
    if (!Number.isInteger(history) || history < 0) {
      throw new TypeError(`schedule.getStatus: history must be a whole number of runs, got ` +
        `${String(history)}`);
    }
    const job = await this.#t.request('GET', ScheduleClient.#job('schedule.getStatus', jobId));
    job.recent_runs = history === 0 ? [] : await this.#t.request('GET',
      ScheduleClient.#job('schedule.getStatus', job.id, '/history'), { query: { limit: history } });
    return job;
  }

  /** PUT /api/v1/schedule/{id}: the fields given change; the job as it is now. */
  async update(jobId, patch) {
    const path = ScheduleClient.#job('schedule.update', jobId);
    if (!isPlainObject(patch)) {
      throw new TypeError(`schedule.update: expected the fields to change, got ${kind(patch)}`);
    }
    return this.#t.request('PUT', path, { body: toWire('schedule.update', patch, JOB) });
  }

  /** POST /api/v1/schedule/{id}/run: a manual run, queued (its id, status pending). */
  async runNow(jobId, options) {
    const path = ScheduleClient.#job('schedule.runNow', jobId, '/run');
    const body = toWire('schedule.runNow', optionsOf('schedule.runNow', options), RUN_NOW);
    return this.#t.request('POST', path, { body });
  }

  /** POST /api/v1/schedule/{id}/pause. */
  async pause(jobId) {
    return this.#t.request('POST', ScheduleClient.#job('schedule.pause', jobId, '/pause'));
  }

  /** POST /api/v1/schedule/{id}/resume. */
  async resume(jobId) {
    return this.#t.request('POST', ScheduleClient.#job('schedule.resume', jobId, '/resume'));
  }

  /** POST /api/v1/schedule/{id}/reset: re-arm a dead-letter job. */
  async reset(jobId) {
    return this.#t.request('POST', ScheduleClient.#job('schedule.reset', jobId, '/reset'));
  }

  /** DELETE /api/v1/schedule/{id}: the job and its history. */
  async delete(jobId) {
    return this.#t.request('DELETE', ScheduleClient.#job('schedule.delete', jobId));
  }

  /** GET /api/v1/schedule/{id}/history: runs newest first (limit: 20 unless given). */
  async getHistory(jobId, options) {
    const path = ScheduleClient.#job('schedule.getHistory', jobId, '/history');
    const query = toQuery('schedule.getHistory', optionsOf('schedule.getHistory', options),
      HISTORY);
    return this.#t.request('GET', path, { query });
  }

  /** GET /api/v1/runs/{runId}: one run, with its whole output and input. */
  async getRun(runId) {
    return this.#t.request('GET', ScheduleClient.#run('schedule.getRun', runId));
  }

  /** POST /api/v1/runs/{runId}/cancel: a pending run is cancelled at once; a running one
   * is returned still running while its process group is killed. */
  async cancelRun(runId) {
    return this.#t.request('POST', ScheduleClient.#run('schedule.cancelRun', runId, '/cancel'));
  }

  /** GET /api/v1/schedule/{id}/next_run: the next ``count`` (default 1) slots. */
  async nextRuns(jobId, options) {
    const path = ScheduleClient.#job('schedule.nextRuns', jobId, '/next_run');
    const query = toQuery('schedule.nextRuns', optionsOf('schedule.nextRuns', options),
      NEXT_RUNS);
    return this.#t.request('GET', path, { query });
  }

  /** GET /api/v1/health/scheduler. */
  async health() {
    return this.#t.request('GET', `${API}/health/scheduler`);
  }
}

/** ``client.runs``: approvals. */
export class RunsClient {
  #t;

  constructor(transport) {
    this.#t = transport;
  }

  /** GET /api/v1/approvals: runs awaiting approval, with job_name and approvers. */
  async pending() {
    return this.#t.request('GET', `${API}/approvals`);
  }

  /** POST /api/v1/runs/{runId}/approve: the run is pending again and starts under the
   * normal rules (403 unless you are one of its job's approvers). */
  async approve(runId, options) {
    const path = `${API}/runs/${idOf('runs.approve', runId, 'runId')}/approve`;
    const body = toWire('runs.approve', optionsOf('runs.approve', options), APPROVE);
    return this.#t.request('POST', path, { body });
  }

  /** POST /api/v1/runs/{runId}/deny: the run is recorded denied, with the reason. */
  async deny(runId, options) {
    const path = `${API}/runs/${idOf('runs.deny', runId, 'runId')}/deny`;
    const body = toWire('runs.deny', optionsOf('runs.deny', options), DENY);
    return this.#t.request('POST', path, { body });
  }
}

/** ``client.audit``: the audit trail. */
export class AuditClient {
  #t;

  constructor(transport) {
    this.#t = transport;
  }

  /** GET /api/v1/audit: events newest first (since/until: a date, an RFC 3339 instant or a
   * Date; limit: 100 unless given). */
  async query(options) {
    const query = toQuery('audit.query', optionsOf('audit.query', options), AUDIT);
    return this.#t.request('GET', `${API}/audit`, { query });
  }
}

/**
 * ``new SymbiontClient({ baseUrl, apiKey })`` (TCP, Authorization: Bearer apiKey) or
 * ``new SymbiontClient({ socketPath })`` (the Unix socket); with neither, the socket from
 * $SYMBI_SOCKET or /run/symbid/control.sock. ``timeoutMs`` (default 30000) bounds each
 * request.
 */
export class SymbiontClient {
  #t;

  constructor(options = {}) {
    this.#t = new Transport(options);
    this.schedule = new ScheduleClient(this.#t);
    this.runs = new RunsClient(this.#t);
    this.audit = new AuditClient(this.#t);
    Object.freeze(this);
  }

  /** The base URL (without /api/v1), or null over the socket. */
  get baseUrl() {
    return this.#t.baseUrl;
  }

  /** The socket's path, or null over TCP. */
  get socketPath() {
    return this.#t.socketPath;
  }

  get timeoutMs() {
    return this.#t.timeoutMs;
  }

  /** GET /api/v1/health/scheduler (as schedule.health()). */
  async health() {
    return this.schedule.health();
  }
}

export default SymbiontClient;
