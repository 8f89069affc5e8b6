"""Shell completion: ``symbi completion bash|zsh`` prints a script; the script asks
``symbi __complete WORD...`` for the candidates, so one piece of Python (walking the
same argparse parser the CLI uses) completes commands, flags, choices, files and, when
the daemon is reachable, job and agent names."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Optional

from symbid.errors import EXIT_OK

FILES = "__files__"  # tells the script to complete file names

BASH = r"""# bash completion for symbi; load with: source <(symbi completion bash)
_symbi() {
    local cur=${COMP_WORDS[COMP_CWORD]} out IFS=$'\n'
    out=$(symbi __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    if [[ $out == __files__ ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$out" -- "$cur"))
    fi
}
complete -o filenames -F _symbi symbi
"""

ZSH = r"""#compdef symbi
# zsh completion for symbi; load with: source <(symbi completion zsh), or install as
# _symbi in a directory of $fpath
_symbi() {
    local -a out
    out=("${(@f)$(symbi __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ ${out[1]} == __files__ ]]; then
        _files
    else
        compadd -- ${out:#}
    fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _symbi "$@"
else
    compdef _symbi symbi
fi
"""


def script(shell: str) -> str:
    return BASH if shell == "bash" else ZSH


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings
            if a.help != argparse.SUPPRESS}


def _daemon_names(kind: str, words: Sequence[str]) -> list[str]:
    """Job or agent names, if the daemon answers within a second (quietly nothing if not)."""
    from symbid.client import SymbiontClient

    socket = None
    for i, word in enumerate(words[:-1]):
        if word == "--socket":
            socket = words[i + 1]
        elif word.startswith("--socket="):
            socket = word.split("=", 1)[1]
    try:
        client = SymbiontClient(socket_path=socket or os.environ.get("SYMBI_SOCKET") or None,
                                timeout=1.0)
        if kind == "agent":
            return [str(a.name) for a in client.agents.list()]
        return [str(j.name) for j in client.schedule.list()]
    except Exception:  # completion must never print a traceback into the shell
        return []


def candidates(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """What may come next on ``symbi WORDS...`` (the last word is the one being typed)."""
    current = parser
    path: list[str] = []
    skip = False
    for word in words[:-1]:
        if skip:
            skip = False
            continue
        options = _options(current)
        if word.startswith("-"):
            action = options.get(word.split("=", 1)[0])
            skip = action is not None and action.nargs != 0 and "=" not in word
            continue
        sub = _subcommands(current).get(word)
        if sub is not None:
            current = sub
            path.append(word)
    typed = words[-1] if words else ""
    if skip:  # the value of an option
        previous = words[-2]
        action = _options(current).get(previous)
        if action is not None and action.choices:
            return [str(c) for c in action.choices]
        if previous in ("--file", "--socket", "--token-file"):
            return [FILES]
        if previous == "--session":
            return _daemon_names("job", words)
        return []
    if typed.startswith("-"):
        return sorted(_options(current))
    subs = _subcommands(current)
    if subs:
        return sorted(name for name in subs if not name.startswith("_"))
    positional = [a for a in current._actions if not a.option_strings
                  and a.help != argparse.SUPPRESS]
    if not positional:
        return []
    action = positional[0]
    if action.choices:
        return [str(c) for c in action.choices]
    if action.dest == "job":
        return _daemon_names("job", words)
    if action.dest == "agent":
        return _daemon_names("agent", words)
    if action.dest in ("files", "file"):
        return [FILES]
    return []


def run(parser: argparse.ArgumentParser, words: Sequence[str]) -> int:
    for word in candidates(parser, list(words) or [""]):
        print(word)
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return EXIT_OK


def complete_main(argv: Optional[Sequence[str]]) -> Optional[list[str]]:
    """The words after ``__complete``, if this is a completion request."""
    if argv and argv[0] == "__complete":
        return list(argv[1:])
    return None
