"""Reading consultation definitions from YAML files."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.definitions import ConsultationSpec, DefinitionError, parse_consultation


def read_definition(path: Path) -> ConsultationSpec:
    """Parse and validate a consultation file; raises DefinitionError saying what to fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DefinitionError([f"{path}: cannot read the file ({error.strerror})"]) from None
    except UnicodeDecodeError:
        raise DefinitionError([f"{path}: not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise DefinitionError([f"{path}: {problem}{line}"]) from None
    return parse_consultation(data)
