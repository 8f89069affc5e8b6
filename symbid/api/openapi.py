"""The OpenAPI 3.1 document of the native routes, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from symbid.agentdef import AgentKind
from symbid.model import MAXIMUMS, NAME_MAX, CatchUp, JobStatus, RunStatus, SessionMode, Trigger

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_BOOL = {"type": "boolean"}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_STRS = {"type": "array", "items": _STR}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_NAME = {**_STR, "minLength": 1, "maxLength": NAME_MAX,
         "description": "Unicode letters and digits, '.', '_', '-'; starts with a letter or "
                        "a digit; not 8+ hex digits and dashes only (that looks like an id)"}

_ERRORS = {
    "400": _json(_ref("Error"), "Invalid request: the error names the field"),
    "404": _json(_ref("Error"), "No such job"),
    "409": _json(_ref("Error"), "Conflicts with the job's state or origin"),
}
_RUN_ERRORS = {
    "400": _json(_ref("Error"), "Invalid request: the error names the field or parameter"),
    "404": _json(_ref("Error"), "No such run"),
}
_ID_PREFIX = {"type": "string", "pattern": "^[0-9a-fA-F-]{8,36}$",
              "description": "the start of an id: 8 to 36 hex digits and dashes"}
_DAY_OR_INSTANT = {"type": "string", "description": "a date (2026-02-01) or an RFC 3339 "
                   "instant"}
_TEXT = {"text/plain; charset=utf-8": {"schema": {"type": "string"}}}

_DEFINITION = {
    "name": _NAME,
    "agent_id": _STR,
    "cron_expr": {**_NSTR, "maxLength": MAXIMUMS["cron_expr"],
                  "description": "5-field Vixie cron or the 6/7-field form"},
    "at": {**_TIME, "description": "one-shot time; without an offset it is in timezone"},
    "timezone": {**_STR, "default": "UTC", "maxLength": MAXIMUMS["timezone"]},
    "session_mode": {"enum": [m.value for m in SessionMode]},
    "heartbeat": {"type": "object", "properties": {
        "enabled": _BOOL, "context_mode": {"enum": [m.value for m in SessionMode]},
        "max_iterations": {**_INT, "minimum": 1,
                           "maximum": MAXIMUMS["heartbeat.max_iterations"]}}},
    "delivery": _STRS,
    "delivery_config": {"type": "object", "properties": {
        "webhook_url": _NSTR, "webhook_headers": {"type": "object",
                                                  "additionalProperties": _STR},
        "slack_channel": _NSTR, "email_recipients": _STRS, "webhook_secret": _NSTR}},
    "webhook_url": _NSTR,
    "webhook_secret": {**_NSTR, "description": "a ${VAR} reference: the key of the "
                       "X-Symbid-Signature HMAC-SHA256 of each webhook body"},
    "alert": {**_STRS, "description": "channels for short alerts: a run that failed or "
              "timed out after its retries, the job going to dead_letter, the dead man's "
              "switch; a recovered message on the next success"},
    "alert_cooldown": {"type": ["string", "number", "null"], "description": "at most one "
                       "problem alert per job this often, whatever the event (default 1h); "
                       "dead_letter and job_failed are always sent"},
    "alert_if_no_success_within": {"type": ["string", "number", "null"], "description":
                                   "alert when an active job has not succeeded for this "
                                   "long"},
    "webhook_headers": {"type": "object", "additionalProperties": _STR},
    "slack_channel": _NSTR,
    "email_recipients": _STRS,
    "policy": {"type": "object", "properties": {
        "require_approval": _BOOL, "approvers": _STRS,
        "max_runtime": {"type": ["string", "number", "null"],
                        "description": 'a duration ("5m") or seconds'},
        "require_capabilities": _STRS,
        "allowed_hours": {"type": ["object", "null"],
                          "properties": {"start": _STR, "end": _STR,
                                         "timezone": {**_STR, "default": "UTC"}}},
        "allowed_environments": _STRS, "require_agent_pin": _BOOL,
        "approval_timeout": {"type": ["string", "number", "null"],
                             "description": "a duration; default [scheduler] "
                                            "approval_timeout_seconds"}}},
    "max_concurrent": {**_INT, "minimum": 1, "maximum": MAXIMUMS["max_concurrent"],
                       "default": 1},
    "max_retries": {**_NINT, "minimum": 0, "maximum": MAXIMUMS["max_retries"]},
    "jitter_seconds": {"type": ["number", "null"], "minimum": 0,
                       "maximum": MAXIMUMS["jitter_seconds"]},
    "catch_up": {"enum": [c.value for c in CatchUp]},
    "catch_up_limit": {**_INT, "minimum": 0, "maximum": MAXIMUMS["catch_up_limit"]},
    "input": _NSTR,
    "agent_pin_jwt": _NSTR,
}


_NINT_MIN1 = {**_NINT, "minimum": 1}
_AGENT = {
    "name": _NAME,
    "kind": {"enum": [k.value for k in AgentKind],
             "description": "optional on input; must agree with command or model"},
    "command": {**_STRS, "description": "a command agent's argv (input on stdin)"},
    "env": {"type": "object", "additionalProperties": _STR,
            "description": "${NAME} references resolve from symbid's environment at run time"},
    "working_dir": _NSTR, "user": _NSTR, "group": _NSTR,
    "limits": {"type": "object", "properties": {
        "memory": {"type": ["integer", "string", "null"], "description": 'bytes or "512M"'},
        "cpu_time": {"type": ["number", "string", "null"], "description": "seconds or "
                     '"30s"'},
        "processes": _NINT_MIN1, "open_files": _NINT_MIN1,
        "output": {"type": ["integer", "string", "null"],
                   "description": "bytes of output kept"}}},
    "capabilities": _STRS,
    "model": {**_NSTR, "description": "an llm agent's model (instead of command)"},
    "system_prompt": _NSTR, "endpoint": _NSTR, "agentpin_id": _NSTR,
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "max_tokens": _NINT_MIN1, "max_tool_calls": {**_NINT, "minimum": 0},
    "max_context_bytes": {"type": ["integer", "string", "null"],
                          "description": 'bytes or "64K"'},
    "max_tokens_per_run": _NINT_MIN1,
    "summarize": {**_BOOL, "description": "llm agents: after a run that succeeded, ask the "
                  "model for the summary the next run sees (default false)"},
    "tools": {"type": "object", "description": "tool name -> tool (llm agents)",
              "additionalProperties": {"type": "object", "required": ["command"],
                                       "additionalProperties": False, "properties": {
                  "description": _STR, "command": _STRS, "requires": _STRS,
                  "parameters": {"type": "object", "additionalProperties": {
                      "enum": ["string", "integer", "number", "boolean"]}},
                  "parameters_schema": {**_STR, "description": "a JSON Schema object, as "
                                        "text"}}}},
}
_SYMBI = {**_STR, "minLength": 1, "description": "agent blocks of the .symbi DSL "
          "(symbi-dsl(5)); at least one"}
_AGENT_ERRORS = {
    "403": _json(_ref("Error"), "[api] define_agents is false: agents come from agents_dir"),
    "404": _json(_ref("Error"), "No such agent"),
    "409": _json(_ref("Error"), "Defined in an agents_dir file, or used by jobs"),
}


def _agent_paths() -> dict[str, Any]:
    name = [{"name": "name", "in": "path", "required": True, "schema": _STR}]
    return {
        "/api/v1/agents": {
            "get": {"summary": "List agents, by name (a shadowed API agent after the file "
                               "agent that shadows it)",
                    "responses": {"200": _json({"type": "array", "items": _ref("Agent")},
                                               "Agents")}},
            "post": {
                "summary": "Define agents: one JSON agent, or every agent block of .symbi "
                           "text (schedule blocks are refused); re-posting an API agent "
                           "updates it",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("AgentDefine")},
                    "text/x-symbi": {"schema": _SYMBI}, "text/plain": {"schema": _SYMBI}}},
                "responses": {"201": _json({"type": "object", "properties": {
                    "agents": {"type": "array", "items": _ref("Agent")},
                    "created": _STRS, "updated": _STRS,
                    "warnings": {**_STRS, "description": "the DSL loader's warnings"}}},
                    "Defined"), **_ERRORS, **_AGENT_ERRORS,
                    "415": _json(_ref("Error"), "Neither JSON nor .symbi text")}},
        },
        "/api/v1/agents/{name}": {
            "get": {"summary": "The agent in use under this name", "parameters": name,
                    "responses": {"200": _json(_ref("Agent"), "The agent"),
                                  "404": _AGENT_ERRORS["404"]}},
            "delete": {"summary": "Remove an API-defined agent (refused while jobs use it)",
                       "parameters": name,
                       "responses": {"200": _json({"type": "object", "properties": {
                           "name": _STR, "deleted": _BOOL}}, "Deleted"), **_AGENT_ERRORS}},
        },
        "/api/v1/agents/{name}/run": {"post": {
            "summary": "Run the agent once, outside the schedule (symbi run): a manual run "
                       "of its ad hoc job adhoc:NAME (hidden from listings unless all=true; "
                       "fully ephemeral), or with session of that job, in its session "
                       "context",
            "parameters": name,
            "requestBody": _json({"type": "object", "additionalProperties": False,
                                  "properties": {
                "input": {**_NSTR, "description": "the run's input (default: none; with "
                          "session, the job's own input)"},
                "session": {**_NSTR, "minLength": 1, "description": "a job of this agent "
                            "(id or name): the run is a manual run of it"},
                "wait": {**_BOOL, "default": False, "description": "answer once the run "
                         "has ended"}}}, "Optional input, session and wait"),
            "responses": {
                "200": _json(_ref("Run"), "With wait: the run, ended"),
                "202": _json(_ref("Run"), "The queued run (with wait: still open, as the "
                             "client went away or the daemon stops)"),
                "400": _json(_ref("Error"), "Invalid request, or a session job of another "
                             "agent: the error names the field"),
                "404": _json(_ref("Error"), "No such agent (the message lists the defined "
                             "ones), or no such session job"),
                "409": _json(_ref("Error"), "A job named adhoc:NAME is not the agent's ad "
                             "hoc job"),
                "503": _json(_ref("Error"), "too_many_followers: with wait, half of the "
                             "listener's worker threads already follow output or wait")}}},
    }


_COMMON = {
    "400": _json(_ref("Error"), "Invalid request: the error names the field, or the query "
                 "parameter the route does not take or that is given twice"),
    "401": _json(_ref("Error"), "Over TCP: no valid Authorization: Bearer token "
                 "(WWW-Authenticate: Bearer); the Unix socket needs none"),
}
_WRITE = {
    "507": _json(_ref("Error"), "storage_full: the state directory's file system is full; "
                 "nothing was changed"),
}
_BODY = {
    "413": _json(_ref("Error"), "too_large: the body is larger than [api] max_body_bytes"),
}


# Where an operation's answer names what others take in their path: (operation, status,
# path parameter, where in the body), for the links that let a client (or schemathesis)
# follow a created job, run or agent.
_MAKERS = (("post /api/v1/schedule", "201", "job_id", "$response.body#/id"),
           ("post /api/v1/schedule/{job_id}/run", "202", "run_id", "$response.body#/id"),
           ("post /api/v1/agents/{name}/run", "202", "run_id", "$response.body#/id"),
           ("post /api/v1/agents", "201", "name", "$response.body#/agents/0/name"))


def _operation_id(method: str, path: str) -> str:
    return method + "_" + "_".join(p.strip("{}") for p in path.split("/")[1:] if p)


def document() -> dict[str, Any]:
    """The document: every operation with an operationId, the errors every route can
    give, and links from what creates a job, a run or an agent to what takes it."""
    doc = _document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            op["operationId"] = _operation_id(method, path)
            responses = op["responses"]
            extra = {**_COMMON, **(_WRITE if method != "get" else {}),
                     **(_BODY if "requestBody" in op else {})}
            for status, response in extra.items():
                responses.setdefault(status, response)
    for maker, status, param, where in _MAKERS:
        method, path = maker.split(" ", 1)
        links = doc["paths"][path][method]["responses"][status].setdefault("links", {})
        for other, ops in doc["paths"].items():
            if "{" + param + "}" in other and other != path:
                for op in ops.values():
                    links[op["operationId"]] = {"operationId": op["operationId"],
                                                "parameters": {param: where}}
    return doc


def _document() -> dict[str, Any]:
    job_path = "/api/v1/schedule/{job_id}"
    job_param = [{"name": "job_id", "in": "path", "required": True, "schema": _STR,
                  "description": "job id or name"}]
    ok_job = {"200": _json(_ref("Job"), "The job"), **_ERRORS}
    run_param = [{"name": "run_id", "in": "path", "required": True, "schema": _STR}]

    def action(summary: str) -> dict[str, Any]:
        return {"post": {"summary": summary, "parameters": job_param, "responses": ok_job}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "symbid native API", "version": "1"},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/schedule": {
                "post": {"summary": "Create a job, or a batch of jobs (all or none)",
                         "description": "An array body is a batch: every job is created in "
                         "one transaction, or none is; a refusal names each bad element by "
                         "index (field \"[3].cron_expr\", and errors[]). An array body may "
                         "be [api] max_batch_bytes long, an object [api] max_body_bytes.",
                         "requestBody": {**_json({"oneOf": [
                             _ref("JobCreate"),
                             {"type": "array", "minItems": 1, "items": _ref("JobCreate")}]},
                             "The job, or an array of jobs"), "required": True},
                         "responses": {
                             "201": _json({"oneOf": [
                                 _ref("Job"), {"type": "array", "items": _ref("Job")}]},
                                 "Created: the job, or the batch's jobs in its order"),
                             **_ERRORS,
                             "409": _json(_ref("Error"), "A name is taken (in a batch: "
                                          "given twice, or already a job's)"),
                             "413": _json(_ref("Error"), "The body is over its cap: [api] "
                                          "max_batch_bytes (an array) or max_body_bytes")}},
                "get": {"summary": "List jobs", "parameters": [
                    {"name": "status", "in": "query", "schema":
                        {"enum": [s.value for s in JobStatus]}},
                    {"name": "agent_id", "in": "query", "schema": _STR},
                    {"name": "id_prefix", "in": "query", "schema": _ID_PREFIX},
                    {"name": "all", "in": "query",
                     "schema": {"enum": ["true", "false", "1", "0"], "default": "false"},
                     "description": "also the agents' ad hoc jobs (source adhoc)"}],
                    "responses": {"200": _json({"type": "array", "items": _ref("Job")},
                                               "Jobs")}},
            },
            job_path: {
                "get": {"summary": "Get a job", "parameters": job_param, "responses": ok_job},
                "put": {"summary": "Update a job (any definition field)",
                        "parameters": job_param,
                        "requestBody": {**_json(_ref("JobUpdate"), "Fields to change"),
                                        "required": True},
                        "responses": ok_job},
                "delete": {"summary": "Delete a job and its history",
                           "parameters": job_param,
                           "responses": {"200": _json({"type": "object"}, "Deleted"),
                                         **_ERRORS}},
            },
            f"{job_path}/pause": action("Pause a job"),
            f"{job_path}/resume": action("Resume a paused job"),
            f"{job_path}/reset": action("Re-arm a dead-letter job"),
            f"{job_path}/run": {"post": {
                "summary": "Run a job now", "parameters": job_param,
                "requestBody": _json({"type": "object", "properties": {"input": _NSTR},
                                      "additionalProperties": False}, "Optional input"),
                "responses": {"202": _json(_ref("Run"), "The queued run"), **_ERRORS}}},
            f"{job_path}/history": {"get": {
                "summary": "Run history, newest first", "parameters": job_param + [
                    {"name": "limit", "in": "query",
                     "schema": {**_INT, "default": 20, "minimum": 1, "maximum": 10_000}},
                    {"name": "status", "in": "query",
                     "schema": {"enum": [s.value for s in RunStatus]}}],
                "responses": {"200": _json({"type": "array", "items": _ref("Run")},
                                           "Runs"), **_ERRORS}}},
            f"{job_path}/next_run": {"get": {
                "summary": "Next scheduled run(s)", "parameters": job_param + [
                    {"name": "count", "in": "query",
                     "schema": {**_INT, "default": 1, "minimum": 1, "maximum": 1000}}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "job_id": _STR, "name": _STR, "next_run": _TIME,
                    "next_runs": {"type": "array", "items": _TIME}}}, "Next runs"),
                    **_ERRORS}}},
            f"{job_path}/alerts": {"get": {
                "summary": "The job's alerts, newest first: one per channel, with its event "
                           "(run_failed, dead_letter, job_failed, no_success, recovered), "
                           "message, status and receipts", "parameters": [
                    *job_param, {"name": "limit", "in": "query",
                                 "schema": {"type": "integer", "minimum": 1,
                                            "maximum": 1000}}],
                "responses": {"200": _json({"type": "array", "items": {"type": "object"}},
                                           "Alerts"), **_ERRORS}}},
            f"{job_path}/context": {
                "get": {"summary": "The job's stored session context", "parameters": job_param,
                        "responses": {"200": _json(_ref("Context"), "The context"),
                                      **_ERRORS}},
                "delete": {"summary": "Reset the job's session context: the stored one "
                           "emptied, its state directory emptied (409 while a run of the "
                           "job is going)", "parameters": job_param,
                           "responses": {"200": _json(_ref("Context"), "The empty context"),
                                         **_ERRORS}}},
            "/api/v1/runs": {"get": {
                "summary": "Runs of any job whose id starts with id_prefix, newest first "
                           "(history rows: previews of output and input)",
                "parameters": [
                    {"name": "id_prefix", "in": "query", "required": True,
                     "schema": _ID_PREFIX},
                    {"name": "limit", "in": "query",
                     "schema": {**_INT, "default": 20, "minimum": 1, "maximum": 1000}}],
                "responses": {"200": _json({"type": "array", "items": _ref("Run")},
                                           "Runs"), **_RUN_ERRORS}}},
            "/api/v1/runs/{run_id}": {"get": {
                "summary": "One run", "parameters": run_param,
                "responses": {"200": _json(_ref("Run"), "The run"), **_RUN_ERRORS}}},
            "/api/v1/runs/{run_id}/output": {"get": {
                "summary": "A run's output: stored once it has finished, what it has printed "
                           "so far while it goes (masked as stored)",
                "parameters": run_param + [
                    {"name": "follow", "in": "query",
                     "schema": {"enum": ["true", "false", "1", "0"], "default": "false"},
                     "description": "stream the output (chunked) as it is printed, until "
                                    "the run's final state is stored; a finished run's "
                                    "output is sent whole"}],
                "responses": {
                    "200": {"description": "The output (UTF-8 text)", "content": _TEXT},
                    **_RUN_ERRORS,
                    "503": _json(_ref("Error"), "too_many_followers: half of the "
                                 "listener's worker threads already follow output")}}},
            "/api/v1/runs/{run_id}/cancel": {"post": {
                "summary": "Cancel a pending or running run: one that has not started is "
                           "recorded cancelled (200); a running one has its process group "
                           "killed and is recorded cancelled once it has gone (202)",
                "parameters": run_param,
                "responses": {
                    "200": _json(_ref("Run"), "Recorded cancelled"),
                    "202": _json(_ref("Run"), "Its process group is being killed"),
                    **_RUN_ERRORS,
                    "409": _json(_ref("Error"), "The run has already finished"),
                    "503": _json(_ref("Error"), "The scheduler loop did not answer")}}},
            "/api/v1/approvals": {"get": {
                "summary": "The runs awaiting approval, each with job_name and approvers",
                "responses": {"200": _json({"type": "array", "items": _ref("Run")},
                                           "Runs awaiting approval")}}},
            **{f"/api/v1/runs/{{run_id}}/{verb}": {"post": {
                "summary": summary, "parameters": run_param,
                "requestBody": {"required": False, "content": {"application/json": {
                    "schema": {"type": "object", "additionalProperties": False,
                               "properties": {key: {**_NSTR, "maxLength": 2000}}}}}},
                "responses": {
                    "200": _json(_ref("Run"), "The run after the decision"),
                    **_RUN_ERRORS,
                    "403": _json(_ref("Error"), "Not one of the job's approvers (named)"),
                    "409": _json(_ref("Error"), "The run does not await approval"),
                    "503": _json(_ref("Error"), "The scheduler loop did not answer")}}}
               for verb, key, summary in (
                   ("approve", "comment", "Approve a run awaiting approval: it is pending "
                                          "again and starts under the normal rules"),
                   ("deny", "reason", "Deny a run awaiting approval: it is recorded denied"))},
            "/api/v1/health/scheduler": {"get": {
                "summary": "Scheduler health", "responses": {
                    "200": _json(_ref("Health"), "Health")}}},
            "/api/v1/reload": {"post": {
                "summary": "Re-read agents_dir and the reloadable configuration",
                "responses": {"200": _json({"type": "object"}, "What changed")}}},
            "/api/v1/backup": {"get": {
                "summary": "A consistent copy of the database, taken while the daemon runs "
                           "(SQLite's online backup); `symbi backup FILE` writes it",
                "responses": {"200": {"description": "The database file", "content": {
                    "application/vnd.sqlite3": {"schema": {"type": "string",
                                                           "format": "binary"}}}},
                    "507": _json(_ref("Error"), "No room for the copy beside the database "
                                                "(storage_full)")}}},
            "/api/v1/audit": {"get": {
                "summary": "Audit events, newest first (symbi audit)", "parameters": [
                    {"name": "type", "in": "query", "schema": _STR,
                     "description": "an event type, e.g. CronJobCreated"},
                    {"name": "job", "in": "query", "schema": _STR,
                     "description": "a job's name or id"},
                    {"name": "actor", "in": "query", "schema": _STR,
                     "description": "who acted: a Unix user, token:NAME, scheduler"},
                    {"name": "since", "in": "query", "schema": _DAY_OR_INSTANT,
                     "description": "events at or after this"},
                    {"name": "until", "in": "query", "schema": _DAY_OR_INSTANT,
                     "description": "events before this"},
                    {"name": "limit", "in": "query",
                     "schema": {**_INT, "default": 100, "minimum": 1, "maximum": 1000}}],
                "responses": {"200": _json({"type": "array", "items": _ref("AuditEvent")},
                                           "Events")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document", "responses": {
                    "200": _json({"type": "object"}, "The OpenAPI 3.1 document")}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (the text exposition format)", "responses": {
                    "200": {"description": "The metrics", "content": {
                        "text/plain; version=0.0.4; charset=utf-8": {
                            "schema": {"type": "string"}}}}}}},
            "/api/v1/logs/target": {"get": {
                "summary": "Where the daemon writes its log, for `symbi logs`",
                "responses": {"200": _json({"type": "object", "properties": {
                    "journal": {"type": "boolean"}, "log_file": _NSTR}}, "Its log")}}},
            **_agent_paths(),
        },
        "components": {"securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer", "description": "over TCP: a token of [api] "
            "token_file, SYMBI_API_KEY or [api.tokens]; the Unix socket takes its peer's "
            "credentials instead"}}, "schemas": {
            "AuditEvent": {"type": "object", "properties": {
                "id": _INT, "time": _TIME, "type": _STR, "actor": _STR, "job_id": _NSTR,
                "job": _NSTR, "run_id": _NSTR, "details": {"type": "object"}}},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": _STR, "message": _STR, "field": _STR,
                               "errors": {"type": "array", "description": "a batch's "
                                          "refusals, one per bad element", "items": {
                                              "type": "object", "properties": {
                                                  "index": _INT, "code": _STR,
                                                  "field": _STR, "message": _STR}}}}}}},
            "AgentDefine": {"type": "object", "required": ["name"],
                            "additionalProperties": False, "properties": _AGENT,
                            "examples": [{"name": "hello",
                                          "command": ["/bin/echo", "hello"]}]},
            "Agent": {"type": "object", "properties": {
                **_AGENT, "source": {**_STR, "description": '"api" or "file:PATH"'},
                "created_at": _TIME, "updated_at": _TIME,
                "jobs": {**_INT, "description": "jobs naming this agent (0 when shadowed)"},
                "shadowed_by": {**_NSTR, "description": "the source of the file agent "
                                "used instead of this API agent"}}},
            "JobCreate": {"type": "object", "required": ["name", "agent_id"],
                          "additionalProperties": False,
                          "properties": {**_DEFINITION, "allow_past": _BOOL},
                          "examples": [{"name": "nightly-report", "agent_id": "hello",
                                        "cron_expr": "0 3 * * *",
                                        "timezone": "Europe/Berlin"}]},
            "JobUpdate": {"type": "object", "additionalProperties": False,
                          "properties": _DEFINITION},
            "Job": {"type": "object", "properties": {
                **_DEFINITION, "id": _STR, "status": {"enum": [s.value for s in JobStatus]},
                "source": {**_STR, "description": '"api", "file:PATH", or "adhoc" (an '
                           "agent's ad hoc job: never scheduled)"},
                "next_run": _TIME, "last_run": _TIME, "run_count": _INT,
                "failure_count": _INT, "created_at": _TIME, "updated_at": _TIME,
                "alert_state": {"type": ["object", "null"], "description": "only in GET "
                                "of one job with alert channels: null before its first "
                                "alert", "properties": {
                                    "open": _BOOL, "last_event": _NSTR,
                                    "last_alert_at": _TIME, "held_back": {
                                        **_INT, "description": "alerts the "
                                        "alert_cooldown held back since the last"}}}}},
            "Run": {"type": "object", "properties": {
                "id": _STR, "job_id": _STR, "slot": _TIME, "attempt": _INT,
                "trigger": {"enum": [t.value for t in Trigger]},
                "status": {"enum": [s.value for s in RunStatus]},
                "created_at": _TIME, "started_at": _TIME, "finished_at": _TIME,
                "execution_time_ms": _NINT, "exit_code": _NINT, "signal": _NINT,
                "error_message": _NSTR, "output": {**_NSTR, "description": "the whole "
                "output: only in GET /api/v1/runs/{run_id}"}, "output_truncated": _BOOL,
                "output_bytes": _INT, "output_preview": {**_NSTR, "description": "the first "
                "200 characters of the output"},
                "summary": _NSTR, "input": {**_NSTR, "description": "only in GET "
                "/api/v1/runs/{run_id}"}, "input_preview": {**_NSTR, "description": "the "
                "first 200 characters of the input (history rows)"}, "retry_at": _TIME,
                "approval_deadline": {**_TIME, "description": "awaiting approval: when it is "
                                      "cancelled unless decided"},
                "approved_by": {**_NSTR, "description": "who approved (or denied) the run"},
                "approval_note": {**_NSTR, "description": "the approver's comment or the "
                                  "denier's reason"},
                "iterations": {"type": "array", "description": "a heartbeat wake-up's "
                               "iterations (the last 1000)", "items": {
                                   "type": "object", "properties": {
                                       "number": _INT,
                                       "status": {"enum": [s.value for s in RunStatus]},
                                       "summary": _NSTR, "duration_ms": _INT}}},
                "stop_reason": {**_NSTR, "description": "why a heartbeat wake-up stopped: "
                                "sleep, max_iterations, max_runtime, or an iteration's "
                                "status"},
                "usage": {"type": ["object", "null"], "description": "an llm agent's token "
                          "usage over the run's model requests", "properties": {
                              "prompt_tokens": _INT, "completion_tokens": _INT,
                              "total_tokens": _INT, "requests": _INT}},
                "tool_calls": {"type": "array", "description": "the tool calls the model "
                               "asked for (only in GET /api/v1/runs/{run_id})", "items": {
                                   "type": "object", "properties": {
                                       "id": _STR, "name": _STR, "arguments": _STR,
                                       "exit_status": {**_NINT, "description": "null: "
                                                       "refused, nothing ran"},
                                       "duration_ms": _INT, "error": _NSTR,
                                       "iteration": _INT}}},
                "tool_call_count": {**_INT, "description": "history rows: how many tool "
                                    "calls the run made"},
                "delivery_status": {"enum": ["pending", "delivered", "delivery_failed", None],
                                    "description": "how its output's deliveries stand (not "
                                    "a run status); null without deliveries"},
                "deliveries": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {**_STR, "description": "the delivery id every attempt carries "
                           "(X-Symbid-Delivery-Id)"},
                    "channel": _STR, "kind": {"enum": ["output", "alert"]},
                    "status": {"enum": ["pending", "delivered", "failed"]},
                    "attempts": _INT, "next_at": _TIME,
                    "receipts": {"type": "array", "items": {"type": "object"}}}}}}},
            "Context": {"type": "object", "properties": {
                "session_mode": {"enum": [m.value for m in SessionMode]},
                "stored_mode": {**_NSTR, "description": "the mode of the run that left it"},
                "summary": _NSTR,
                "history": {"type": "array", "items": {"type": "object", "properties": {
                    "input": _NSTR, "output": _NSTR, "run_id": _STR, "at": _TIME,
                    "messages": {"type": "array", "description": "an llm run's messages, "
                                 "its user message onward", "items": {"type": "object"}}}}},
                "history_dropped": {**_INT, "description": "older turns dropped to keep "
                                    "the history within its budget"},
                "run_id": _NSTR, "updated_at": _TIME,
                "state_dir": {**_NSTR, "description": "shared_persistent: the job's state "
                              "directory"}}},
            "Health": {"type": "object", "properties": {
                "status": {"enum": ["healthy", "degraded", "unhealthy"]},
                "error": {**_STR, "description": "why the scheduler is not healthy (only "
                          "then): the last pass's error, or the store probe's"},
                "active_jobs": _INT,
                "paused_jobs": _INT, "in_flight_jobs": _INT, "metrics": {
                    "type": "object", "properties": {
                        "runs_total": _INT, "runs_succeeded": _INT, "runs_failed": _INT,
                        "avg_execution_time_ms": _INT}}}},
        }},
    }
