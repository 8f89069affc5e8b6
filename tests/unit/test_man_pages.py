"""The man pages document what the code defines, read from the code itself.

Every command and flag of the real ``symbi`` parser (``symbi cron ...`` in symbi-cron(1),
the rest in symbi(1)) and of ``symbid`` (symbid(8)); every configuration key, by section,
with its default beside it (symbid.toml(5)); every environment override; every exit
status and error code; every key the .symbi loader accepts (symbi-dsl(5)); the signals
the daemon handles, its journal fields and components, its metrics, its default paths and
the unit's directives (symbid(8)). Nothing here is a hand-written list of names, so adding
a flag or a key without documenting it fails a test. The pages also build with scdoc.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import pytest

from symbid import config as config_module
from symbid import daemon as daemon_module
from symbid import errors as errors_module
from symbid import journal as journal_module
from symbid.cli.main import build_parser
from symbid.components import LOG_COMPONENTS
from symbid.config import ENV_OVERRIDES, Config
from symbid.dsl import loader

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man"
PAGES = ("symbid.8.scd", "symbi.1.scd", "symbi-cron.1.scd", "symbid.toml.5.scd",
         "symbi-dsl.5.scd")


def read(name: str) -> str:
    return (MAN / name).read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """The page's sections by heading (``# NAME``); ``## ...`` subsections stay inside."""
    out: dict[str, str] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("# "):
            heading = line[2:].strip()
            out[heading] = ""
        elif heading:
            out[heading] += line + "\n"
    return out


def section(name: str, heading: str) -> str:
    found = sections(read(name))
    assert heading in found, f"{name} has no section '# {heading}'"
    return found[heading]


def bold(word: str) -> str:
    return f"*{word}*"


def entry_of(text: str, key: str) -> str:
    """The entry of ``*key*``: its line (starting with it) and the indented lines after
    it, up to the next blank line; empty when there is none."""
    m = re.search(rf"^\*{re.escape(key)}\*[^\n]*(\n\t[^\n]*)*", text, re.M)
    return m.group(0) if m else ""


def without_synopsis(text: str) -> str:
    return "".join(body for head, body in sections(text).items() if head != "SYNOPSIS")


# --- the command line -----------------------------------------------------------------

def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs something (a leaf of the parser tree), with its path."""
    nested = subparsers(parser)
    if not nested and path:
        yield path, parser
    for name, sub in nested.items():
        yield from commands(sub, (*path, name))


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings
            if opt not in ("-h", "--help")}


def choices(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each option's (or positional's) choices, by its flag or metavar."""
    out = {}
    for action in parser._actions:
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            out[action.option_strings[0] if action.option_strings else action.dest] = \
                [str(c) for c in action.choices]
    return out


TOP = build_parser()
GLOBAL = flags(TOP)  # every command takes these; symbi(1) documents them once
COMMANDS = list(commands(TOP))


def page_of(path: tuple[str, ...]) -> str:
    return "symbi-cron.1.scd" if path[0] == "cron" else "symbi.1.scd"


def synopsis_entry(page: str, command: str) -> str:
    """The paragraph of the page's SYNOPSIS that starts with ``*command*``."""
    for paragraph in section(page, "SYNOPSIS").split("\n\n"):
        if paragraph.strip().startswith(bold(command)):
            return paragraph
    raise AssertionError(f"{page}: SYNOPSIS has no entry starting with *{command}*")


def test_the_parser_is_walked() -> None:
    paths = {p for p, _ in COMMANDS}
    assert ("cron", "list") in paths and ("dsl", "check") in paths and ("run",) in paths
    assert {"--socket", "--url", "--format", "--version"} <= GLOBAL


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_and_its_flags_are_in_its_page(path: tuple[str, ...]) -> None:
    parser = dict(COMMANDS)[path]
    page = page_of(path)
    command = "symbi " + " ".join(path)
    entry = synopsis_entry(page, command)
    body = without_synopsis(read(page))
    own = flags(parser) - GLOBAL
    for flag in sorted(own):
        assert bold(flag) in entry, f"{command} {flag}: not in its SYNOPSIS in {page}"
        assert bold(flag) in body, f"{command} {flag}: not described in {page}"
    for flag, values in choices(parser).items():
        where = entry if flag in ("--format", "shell") else read(page)
        for value in values:
            assert value in where, f"{command} {flag} {value}: not in {page}"
    if page == "symbi-cron.1.scd":
        assert bold(path[-1]) in section(page, "COMMANDS"), f"{command}: no entry"


def test_the_global_options_are_in_symbi_1() -> None:
    options = section("symbi.1.scd", "GLOBAL OPTIONS")
    for flag in sorted(GLOBAL):
        assert bold(flag) in options, f"{flag} is not in symbi(1) GLOBAL OPTIONS"


def test_every_daemon_option_is_in_symbid_8() -> None:
    parser = daemon_module._parser()
    synopsis = section("symbid.8.scd", "SYNOPSIS")
    options = section("symbid.8.scd", "OPTIONS")
    for flag in sorted(flags(parser)):
        assert bold(flag) in synopsis, f"symbid {flag}: not in symbid(8) SYNOPSIS"
        assert bold(flag) in options, f"symbid {flag}: not in symbid(8) OPTIONS"
    for flag, values in choices(parser).items():
        for value in values:
            assert value in options, f"symbid {flag} {value}: not in symbid(8) OPTIONS"


# --- exit statuses and error codes ----------------------------------------------------

EXIT_STATUSES = {name: value for name, value in vars(errors_module).items()
                 if name.startswith("EXIT_") and isinstance(value, int)}
ERROR_CODES = sorted({cls.code for cls in vars(errors_module).values()
                      if inspect.isclass(cls) and issubclass(cls, errors_module.SymbidError)})


def test_exit_statuses_are_read() -> None:
    assert {0, 1, 2, 3, 69} <= set(EXIT_STATUSES.values())
    assert "not_found" in ERROR_CODES


@pytest.mark.parametrize("page", ["symbi.1.scd", "symbi-cron.1.scd"])
def test_every_exit_status_is_documented(page: str) -> None:
    text = section(page, "EXIT STATUS")
    for name, value in EXIT_STATUSES.items():
        assert re.search(rf"(^|\s)\*{value}\*", text), f"{name} ({value}) not in {page}"


def test_every_error_code_is_in_symbi_1_with_its_exit_status() -> None:
    text = section("symbi.1.scd", "EXIT STATUS")
    by_code = {cls.code: cls for cls in vars(errors_module).values()
               if inspect.isclass(cls) and issubclass(cls, errors_module.SymbidError)}
    for code in ERROR_CODES:
        line = next((ln for ln in text.splitlines() if bold(code) in ln), None)
        assert line is not None, f"error code {code} is not in symbi(1) EXIT STATUS"
        assert f"({by_code[code].exit_status})" in line, \
            f"error code {code}: its exit status ({by_code[code].exit_status}) is not beside it"


# --- the configuration ------------------------------------------------------------------

def _default_text(f: dataclasses.Field[Any]) -> str:
    """How the page writes a key's default: ``= VALUE``, ``(unset)``, ``(none)`` for an
    empty table, ``(required)`` when there is no default."""
    factory: Any = f.default_factory
    if f.default is dataclasses.MISSING and factory is dataclasses.MISSING:
        return "(required)"
    value = f.default if f.default is not dataclasses.MISSING else factory()
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "= " + str(value).lower()
    if isinstance(value, float):
        return "= " + (str(int(value)) if value.is_integer() else repr(value))
    if isinstance(value, int):
        return f"= {value}"
    if isinstance(value, str):
        return f'= "{value}"'
    if isinstance(value, Mapping) and not value:
        return "(none)"
    return f"= {value!r}"


def config_tables() -> Iterator[tuple[str, type]]:
    """Every TOML table of the configuration and the dataclass that holds its keys:
    the sections of Config, and the tables of their Mapping-of-dataclass keys
    (``[scheduler.delivery.custom.NAME]``)."""
    names = {cls: name for name, cls in config_module._SECTIONS.items()}
    names[config_module.DeliverySettings] = "scheduler.delivery"
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(hints[f.name]):
            cls = hints[f.name]
            yield names[cls], cls
            yield from _nested_tables(names[cls], cls)


def _nested_tables(name: str, cls: type) -> Iterator[tuple[str, type]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if typing.get_origin(hints[f.name]) in (Mapping, dict):
            value_type = typing.get_args(hints[f.name])[1]
            if isinstance(value_type, type) and dataclasses.is_dataclass(value_type):
                yield f"{name}.{f.name}.NAME", value_type


def map_keys() -> Iterator[tuple[str, str]]:
    """Keys that are TOML tables of plain values (``[api.tokens]``)."""
    for name, cls in config_tables():
        if name.endswith(".NAME"):  # a table's keys are its own (env = {...} is a value)
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if typing.get_origin(hints[f.name]) in (Mapping, dict) and \
                    not dataclasses.is_dataclass(typing.get_args(hints[f.name])[1]):
                yield name, f.name


TABLES = list(config_tables())


def test_the_configuration_is_walked() -> None:
    names = [name for name, _ in TABLES]
    assert {"daemon", "api", "scheduler", "scheduler.delivery", "llm"} <= set(names)
    assert "scheduler.delivery.custom.NAME" in names
    assert ("api", "tokens") in set(map_keys())


@pytest.mark.parametrize("table,cls", TABLES, ids=[name for name, _ in TABLES])
def test_every_config_key_is_in_symbid_toml_5_with_its_default(table: str, cls: type) -> None:
    text = section("symbid.toml.5.scd", f"[{table}]")
    lines = text.splitlines()
    keys = {f.name for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        want = f"*{f.name}* {_default_text(f)}"
        assert want in lines, f"[{table}] {f.name}: no line '{want}' in symbid.toml(5)"
    documented = {m.group(1) for ln in lines
                  if (m := re.match(r"\*([a-z_]+)\* (=|\()", ln))}
    assert documented <= keys, f"[{table}] documents keys that do not exist: " \
        f"{sorted(documented - keys)}"


@pytest.mark.parametrize("table,key", list(map_keys()))
def test_every_table_key_has_its_own_section(table: str, key: str) -> None:
    section("symbid.toml.5.scd", f"[{table}.{key}]")


def test_every_environment_override_is_in_symbid_toml_5() -> None:
    text = section("symbid.toml.5.scd", "ENVIRONMENT")
    for var, (table, key) in ENV_OVERRIDES.items():
        assert re.search(rf"\*{var}\*\n\t{re.escape(table)}\.{key}\b", text), \
            f"{var} ({table}.{key}) is not in symbid.toml(5) ENVIRONMENT"


# --- the .symbi language ----------------------------------------------------------------

def _nested_schema(checker: Callable[..., Any]) -> tuple[Mapping[str, Any] | None, bool]:
    """The schema a block checker reads (and whether its keys are named blocks), found in
    its closure; a wrapper (bounded) is looked through."""
    for cell in getattr(checker, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, Mapping) and value and all(callable(v) for v in value.values()):
            return value, checker.__qualname__.startswith("named_blocks")
        if callable(value) and getattr(value, "__closure__", None):
            found = _nested_schema(value)
            if found[0] is not None:
                return found
    return None, False


def _enum_values(checker: Callable[..., Any]) -> list[str]:
    if not checker.__qualname__.startswith("enum"):
        return []
    for cell in checker.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, (list, tuple, set, frozenset)):
            return [str(v) for v in value]
    return []


def dsl_keys(schema: Mapping[str, Any], prefix: str = ""
             ) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every key path of a schema (``policy.allowed_hours.start``, ``tools.NAME.command``)."""
    for key, checker in schema.items():
        path = prefix + key
        yield path, checker
        nested, named = _nested_schema(checker)
        if nested is not None:
            yield from dsl_keys(nested, f"{path}.NAME." if named else f"{path}.")


DSL = {"SCHEDULE KEYS": list(dsl_keys(loader.SCHEDULE)),
       "AGENT KEYS": list(dsl_keys(loader.AGENT))}


def test_the_dsl_schemas_are_walked() -> None:
    schedule = dict(DSL["SCHEDULE KEYS"])
    agent = dict(DSL["AGENT KEYS"])
    assert "policy.allowed_hours.timezone" in schedule and "heartbeat.enabled" in schedule
    assert "tools.NAME.parameters" in agent and "limits.memory" in agent
    assert _enum_values(schedule["catch_up"]) == ["latest", "skip", "all"]


@pytest.mark.parametrize("heading", sorted(DSL))
def test_every_dsl_key_is_in_symbi_dsl_5(heading: str) -> None:
    text = section("symbi-dsl.5.scd", heading)
    lines = text.splitlines()
    for path, checker in DSL[heading]:
        entry = entry_of(text, path)
        assert entry, f"{path}: no entry in symbi-dsl(5) {heading}"
        for value in _enum_values(checker):
            assert bold(value) in entry, f"{path}: its value {value} is not in its entry"
    documented = {m.group(1) for ln in lines if (m := re.match(r"\*([a-zA-Z_.]+)\*", ln))}
    known = {path for path, _ in DSL[heading]}
    assert documented <= known, f"{heading} documents keys the loader does not take: " \
        f"{sorted(documented - known)}"


def test_llm_only_agent_keys_are_marked() -> None:
    text = section("symbi-dsl.5.scd", "AGENT KEYS")
    for key in loader.LLM_ONLY:
        assert "llm agents only" in entry_of(text, key), f"{key}: not marked llm agents only"


# --- the daemon: signals, logging, files, the unit ------------------------------------------

def test_every_signal_the_daemon_handles_is_in_symbid_8() -> None:
    handled = set(re.findall(r"signal\.(SIG[A-Z0-9]+)", inspect.getsource(daemon_module)))
    assert {"SIGTERM", "SIGHUP"} <= handled
    text = section("symbid.8.scd", "SIGNALS")
    for name in sorted(handled):
        assert bold(name) in text, f"{name} is not in symbid(8) SIGNALS"


def _journal_fields() -> set[str]:
    fields = set(journal_module.FIELDS)
    record_fields = getattr(journal_module, "record_fields", None)
    if record_fields is not None:  # every field an entry carries
        record = logging.LogRecord("symbid.scheduler", logging.INFO, __file__, 1, "m", (),
                                   None)
        fields |= set(record_fields(record))
    return fields


def test_every_journal_field_and_component_is_in_symbid_8() -> None:
    text = section("symbid.8.scd", "LOGGING")
    for name in sorted(_journal_fields()):
        assert bold(name) in text, f"journal field {name} is not in symbid(8) LOGGING"
    assert "scheduler" in LOG_COMPONENTS
    for component in LOG_COMPONENTS:
        assert bold(component) in text, f"component {component} is not in symbid(8)"


def test_every_metric_is_in_symbid_8() -> None:
    from symbid.metrics import Metrics

    names = [m.name for m in Metrics(enabled=True).registry.collect()]
    assert "symbiont_cron_runs" in names
    text = section("symbid.8.scd", "CONTROL SOCKET AND API")
    for name in names:  # a counter's name is given without its _total
        assert f"*{name}" in text, f"metric {name} is not in symbid(8)"


def test_every_default_path_is_in_symbid_8_files() -> None:
    text = section("symbid.8.scd", "FILES")
    daemon = config_module.DaemonConfig()
    paths = {getattr(daemon, key) for table, key in config_module._PATH_KEYS
             if table == "daemon" and getattr(daemon, key) is not None}
    paths.add(daemon_module.DEFAULT_CONFIG)
    assert "/var/lib/symbid" in paths
    for path in sorted(paths):
        assert f"_{path}" in text, f"{path} is not in symbid(8) FILES"


def _unit_directives(name: str, group: str) -> list[str]:
    out, current = [], ""
    for line in (ROOT / "units" / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line
        elif current == f"[{group}]" and "=" in line and not line.startswith("#"):
            out.append(line.split("=", 1)[0])
    return out


def test_every_unit_file_and_service_directive_is_in_symbid_8() -> None:
    page = read("symbid.8.scd")
    units = sorted(p.name for p in (ROOT / "units").iterdir())
    assert "symbid.service" in units
    for unit in units:
        assert unit in page, f"units/{unit} is not in symbid(8)"
    directives = _unit_directives("symbid.service", "Service")
    assert "ProtectSystem" in directives
    for directive in directives:
        assert f"{directive}=" in page, f"symbid.service {directive}= is not in symbid(8)"


# --- building ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", PAGES)
def test_the_page_builds_with_scdoc(name: str) -> None:
    scdoc = shutil.which("scdoc")
    if scdoc is None:
        pytest.skip("scdoc is not installed (apt-get install scdoc): the pages' syntax is "
                    "not checked here")
    with open(MAN / name, "rb") as page:
        done = subprocess.run([scdoc], stdin=page, capture_output=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode(errors="replace")
    assert done.stdout.startswith(b".\\\"") or b".TH" in done.stdout


def test_every_page_is_tested() -> None:
    assert sorted(p.name for p in MAN.glob("*.scd")) == sorted(PAGES)
