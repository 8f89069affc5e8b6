// Type declarations of @symbid/client. Arguments are camelCase; results keep the API's
// field names (snake_case), as symbid's native API (/api/v1) answers them; see
// /api/v1/openapi.json on a running daemon.

/** RFC 3339 UTC instant, as the API writes them ("2026-02-01T02:00:00Z"). */
export type Instant = string;

export type JobStatus = 'active' | 'paused' | 'completed' | 'failed' | 'dead_letter';
export type RunStatus =
  | 'pending' | 'awaiting_approval' | 'running' | 'succeeded' | 'failed' | 'timed_out'
  | 'skipped' | 'denied' | 'cancelled' | 'interrupted';
export type Trigger = 'schedule' | 'catch_up' | 'retry' | 'manual' | 'heartbeat';
export type SessionMode = 'ephemeral_with_summary' | 'shared_persistent' | 'fully_ephemeral';
export type CatchUp = 'latest' | 'skip' | 'all';
/** A duration: "30s", "5m", "1h30m", "2d", or a number of seconds. */
export type Duration = string | number;

// --- arguments --------------------------------------------------------------------------

export interface SymbiontClientOptions {
  /** http://HOST:PORT (or https://..., with a path for a reverse proxy), with or without
   * /api/v1. Not with socketPath. */
  baseUrl?: string;
  /** The bearer token TCP requests send (Authorization: Bearer). Only with baseUrl. */
  apiKey?: string;
  /** The control socket. Default: $SYMBI_SOCKET, else /run/symbid/control.sock. */
  socketPath?: string;
  /** How long one request may take, in ms (1 to 2147483647; default 30000). */
  timeoutMs?: number;
}

export interface AllowedHoursInput {
  /** "HH:MM" */
  start: string;
  /** "HH:MM" */
  end: string;
  /** Default "UTC". */
  timezone?: string;
}

export interface PolicyInput {
  requireApproval?: boolean;
  /** Unix user names (socket) or token names (TCP); needs requireApproval. */
  approvers?: string[];
  maxRuntime?: Duration | null;
  requireCapabilities?: string[];
  allowedHours?: AllowedHoursInput | null;
  allowedEnvironments?: string[];
  requireAgentPin?: boolean;
  /** Needs requireApproval. */
  approvalTimeout?: Duration | null;
}

export interface HeartbeatInput {
  enabled?: boolean;
  contextMode?: SessionMode;
  maxIterations?: number;
}

export interface DeliveryConfigInput {
  webhookUrl?: string | null;
  /** Header name -> value (values may be "${VAR}" references). Names are sent as given. */
  webhookHeaders?: Record<string, string>;
  slackChannel?: string | null;
  emailRecipients?: string[];
  /** A "${VAR}" reference: the key of the X-Symbid-Signature HMAC. */
  webhookSecret?: string | null;
}

/** A job's definition fields, camelCase (POST/PUT /api/v1/schedule). */
export interface JobFields extends DeliveryConfigInput {
  name?: string;
  /** The agent the job runs. */
  agentId?: string;
  /** 5-field Vixie cron, @daily..., or the 6/7-field form. Exactly one of cronExpr, at. */
  cronExpr?: string | null;
  /** A one-shot time; without an offset it is in timezone. */
  at?: string | Date | null;
  /** An IANA zone; default "UTC". */
  timezone?: string;
  sessionMode?: SessionMode;
  heartbeat?: HeartbeatInput;
  /** Channels of the run's output: stdout, log_file, webhook, slack, email, custom:NAME. */
  delivery?: string[];
  deliveryConfig?: DeliveryConfigInput;
  /** Channels for short alerts (failures after retries, dead_letter, ...). */
  alert?: string[];
  alertCooldown?: Duration | null;
  alertIfNoSuccessWithin?: Duration | null;
  policy?: PolicyInput;
  maxConcurrent?: number;
  maxRetries?: number | null;
  jitterSeconds?: number | null;
  catchUp?: CatchUp;
  catchUpLimit?: number;
  input?: string | null;
  /** A "${VAR}" reference to the AgentPin credential. */
  agentPinJwt?: string | null;
}

export interface JobCreate extends JobFields {
  name: string;
  agentId: string;
  /** Allow an `at` in the past (it runs at once). */
  allowPast?: boolean;
}

export type JobUpdate = JobFields;

export interface ListOptions {
  status?: JobStatus;
  agentId?: string;
  /** 8 to 36 hex digits and dashes: jobs whose id starts with it. */
  idPrefix?: string;
  /** Also the agents' ad hoc jobs. */
  all?: boolean;
}

export interface StatusOptions {
  /** How many recent runs (default 5; 0: none). */
  history?: number;
}

export interface RunNowOptions {
  input?: string | null;
}

export interface HistoryOptions {
  /** 1 to 10000; default 20. */
  limit?: number;
  status?: RunStatus;
}

export interface NextRunsOptions {
  /** 1 to 1000; default 1. */
  count?: number;
}

export interface ApproveOptions {
  comment?: string | null;
}

export interface DenyOptions {
  reason?: string | null;
}

export interface AuditQuery {
  /** An event type: CronJobCreated, ApprovalGranted, ... */
  type?: string;
  /** A job's name or id. */
  job?: string;
  actor?: string;
  /** A date ("2026-02-01", UTC midnight), an RFC 3339 instant, or a Date: from (in). */
  since?: string | Date;
  /** As since: until (out). */
  until?: string | Date;
  /** 1 to 1000; default 100. */
  limit?: number;
}

// --- results (the API's names) ----------------------------------------------------------

export interface Policy {
  require_approval: boolean;
  approvers: string[];
  max_runtime: string | null;
  require_capabilities: string[];
  allowed_hours: { start: string; end: string; timezone: string } | null;
  allowed_environments: string[];
  require_agent_pin: boolean;
  approval_timeout: string | null;
}

export interface Heartbeat {
  enabled: boolean;
  context_mode: SessionMode;
  max_iterations: number;
}

export interface DeliveryConfig {
  webhook_url: string | null;
  webhook_headers: Record<string, string>;
  slack_channel: string | null;
  email_recipients: string[];
  webhook_secret: string | null;
}

export interface AlertState {
  open: boolean;
  last_event: string | null;
  last_alert_at: Instant | null;
  held_back: number;
}

export interface Job {
  id: string;
  name: string;
  agent_id: string;
  cron_expr: string | null;
  at: Instant | null;
  timezone: string;
  status: JobStatus;
  session_mode: SessionMode;
  heartbeat: Heartbeat;
  delivery: string[];
  delivery_config: DeliveryConfig;
  alert: string[];
  /** Seconds. */
  alert_cooldown: number | null;
  /** Seconds. */
  alert_if_no_success_within: number | null;
  policy: Policy;
  max_concurrent: number;
  max_retries: number | null;
  jitter_seconds: number | null;
  catch_up: CatchUp;
  catch_up_limit: number;
  input: string | null;
  agent_pin_jwt: string | null;
  /** "api", "file:PATH" or "adhoc". */
  source: string;
  next_run: Instant | null;
  last_run: Instant | null;
  run_count: number;
  failure_count: number;
  created_at: Instant;
  updated_at: Instant;
  /** Only from get() of a job with alert channels (null before its first alert). */
  alert_state?: AlertState | null;
}

export interface JobStatusView extends Job {
  /** The newest runs first (history rows). */
  recent_runs: HistoryRun[];
}

export interface Delivery {
  /** The id every attempt carries (X-Symbid-Delivery-Id). */
  id: string;
  channel: string;
  kind: 'output' | 'alert';
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_at: Instant | null;
  receipts: Array<Record<string, unknown>>;
  event?: string | null;
  message?: string | null;
  run_id?: string;
  created_at?: Instant;
}

export interface Iteration {
  number: number;
  status: RunStatus;
  summary: string | null;
  duration_ms: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  requests: number;
}

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
  /** null: refused, nothing ran. */
  exit_status: number | null;
  duration_ms: number;
  error: string | null;
  iteration?: number | null;
}

interface RunBase {
  id: string;
  job_id: string;
  slot: Instant;
  attempt: number;
  trigger: Trigger;
  status: RunStatus;
  created_at: Instant;
  started_at: Instant | null;
  finished_at: Instant | null;
  execution_time_ms: number | null;
  exit_code: number | null;
  signal: number | null;
  error_message: string | null;
  output_truncated: boolean;
  output_bytes: number;
  /** The first 200 characters of the output. */
  output_preview: string | null;
  summary: string | null;
  retry_at: Instant | null;
  iterations: Iteration[];
  stop_reason: string | null;
  usage: Usage | null;
  approval_deadline: Instant | null;
  approved_by: string | null;
  approval_note: string | null;
  delivery_status: 'pending' | 'delivered' | 'delivery_failed' | null;
  deliveries: Delivery[];
}

/** A run as getRun, runNow, cancelRun, approve and deny answer it. */
export interface Run extends RunBase {
  output: string | null;
  input: string | null;
  tool_calls: ToolCall[];
}

/** A run as history rows carry it: previews instead of the whole output and input. */
export interface HistoryRun extends RunBase {
  input_preview: string | null;
  tool_call_count: number;
}

export interface PendingRun extends Run {
  job_name: string | null;
  approvers: string[];
}

export interface NextRuns {
  job_id: string;
  name: string;
  next_run: Instant | null;
  next_runs: Instant[];
}

export interface Deleted {
  id: string;
  name: string;
  deleted: true;
}

export interface Health {
  status: 'healthy' | 'degraded' | 'unhealthy';
  /** Why the scheduler is not healthy (only then). */
  error?: string;
  active_jobs: number;
  paused_jobs: number;
  in_flight_jobs: number;
  metrics: {
    runs_total: number;
    runs_succeeded: number;
    runs_failed: number;
    avg_execution_time_ms: number;
  };
}

export interface AuditEvent {
  id: number;
  time: Instant;
  type: string;
  actor: string;
  job_id: string | null;
  /** The job's name. */
  job: string | null;
  run_id: string | null;
  details: Record<string, unknown>;
}

// --- the client -------------------------------------------------------------------------

export const DEFAULT_SOCKET: '/run/symbid/control.sock';
export const DEFAULT_TIMEOUT_MS: 30000;

/** An error the API answered (status, code, field), or a daemon that could not be
 * reached (code "unavailable") or did not answer in time (code "timeout"; status null). */
/** One refused element of a batch. */
export interface BatchProblem {
  index: number;
  code: string;
  field: string | null;
  message: string;
}

export class SymbidError extends Error {
  constructor(message: string, details?: {
    status?: number | null; code?: string; field?: string | null; method?: string;
    url?: string; errors?: BatchProblem[] | null; cause?: unknown;
  });
  readonly name: 'SymbidError';
  /** The HTTP status; null when no answer came. */
  status: number | null;
  /** not_found, invalid_input, invalid_cron, conflict, forbidden, unauthorized,
   * unavailable, timeout, ... */
  code: string;
  /** The field or parameter (in the API's name) the error is about, or null. */
  field: string | null;
  /** The request's method. */
  method: string | null;
  /** The request's URL, or "the socket PATH (REQUEST PATH)". */
  url: string | null;
  /** A refused batch (schedule.createMany): every bad element; null otherwise. */
  errors: BatchProblem[] | null;
}

export class ScheduleClient {
  private constructor();
  /** POST /api/v1/schedule */
  create(fields: JobCreate): Promise<Job>;
  /** POST /api/v1/schedule with an array: all created in one transaction, or none */
  createMany(jobs: JobCreate[]): Promise<Job[]>;
  /** GET /api/v1/schedule */
  list(options?: ListOptions): Promise<Job[]>;
  /** GET /api/v1/schedule/{id} (an id or a name) */
  get(jobId: string): Promise<Job>;
  /** GET /api/v1/schedule/{id}, and GET .../history?limit=history as recent_runs */
  getStatus(jobId: string, options?: StatusOptions): Promise<JobStatusView>;
  /** PUT /api/v1/schedule/{id} */
  update(jobId: string, patch: JobUpdate): Promise<Job>;
  /** POST /api/v1/schedule/{id}/run */
  runNow(jobId: string, options?: RunNowOptions): Promise<Run>;
  /** POST /api/v1/schedule/{id}/pause */
  pause(jobId: string): Promise<Job>;
  /** POST /api/v1/schedule/{id}/resume */
  resume(jobId: string): Promise<Job>;
  /** POST /api/v1/schedule/{id}/reset */
  reset(jobId: string): Promise<Job>;
  /** DELETE /api/v1/schedule/{id} */
  delete(jobId: string): Promise<Deleted>;
  /** GET /api/v1/schedule/{id}/history */
  getHistory(jobId: string, options?: HistoryOptions): Promise<HistoryRun[]>;
  /** GET /api/v1/runs/{runId} */
  getRun(runId: string): Promise<Run>;
  /** POST /api/v1/runs/{runId}/cancel */
  cancelRun(runId: string): Promise<Run>;
  /** GET /api/v1/schedule/{id}/next_run */
  nextRuns(jobId: string, options?: NextRunsOptions): Promise<NextRuns>;
  /** GET /api/v1/health/scheduler */
  health(): Promise<Health>;
}

export class RunsClient {
  private constructor();
  /** GET /api/v1/approvals */
  pending(): Promise<PendingRun[]>;
  /** POST /api/v1/runs/{runId}/approve */
  approve(runId: string, options?: ApproveOptions): Promise<Run>;
  /** POST /api/v1/runs/{runId}/deny */
  deny(runId: string, options?: DenyOptions): Promise<Run>;
}

export class AuditClient {
  private constructor();
  /** GET /api/v1/audit */
  query(options?: AuditQuery): Promise<AuditEvent[]>;
}

export class SymbiontClient {
  constructor(options?: SymbiontClientOptions);
  readonly schedule: ScheduleClient;
  readonly runs: RunsClient;
  readonly audit: AuditClient;
  /** The base URL without /api/v1, or null over the socket. */
  readonly baseUrl: string | null;
  /** The socket's path, or null over TCP. */
  readonly socketPath: string | null;
  readonly timeoutMs: number;
  /** GET /api/v1/health/scheduler */
  health(): Promise<Health>;
}

export default SymbiontClient;
