"""The ``.symbi`` DSL: grammar, parser (text -> tree) and loader (tree -> model)."""

from symbid.dsl.loader import (
    LoadedFile,
    check_deliveries,
    check_references,
    load_dir,
    load_document,
    load_file,
)
from symbid.dsl.parser import Diagnostic, Document, DslError, parse_file, parse_text

__all__ = [
    "Diagnostic",
    "Document",
    "DslError",
    "LoadedFile",
    "check_deliveries",
    "check_references",
    "load_dir",
    "load_document",
    "load_file",
    "parse_file",
    "parse_text",
]
