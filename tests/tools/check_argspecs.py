#!/usr/bin/env python3
"""Check that every role's meta/argument_specs.yml matches its defaults/main.yml.

For each role under ROLES_DIR:
  - the options of the `main` entry point are exactly the variables in defaults/main.yml;
  - every option has a type and a description;
  - a default that is not a Jinja expression has the declared type;
  - every default has a comment on the line above it.
Exits 1 naming each mismatch.
"""

import sys
from pathlib import Path

import yaml

PY_TYPES = {
    "str": (str,),
    "path": (str,),
    "raw": (object,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def check_role(role):
    problems = []
    defaults_file = role / "defaults" / "main.yml"
    specs_file = role / "meta" / "argument_specs.yml"
    if not specs_file.is_file():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    defaults_text = defaults_file.read_text() if defaults_file.is_file() else ""
    defaults = yaml.safe_load(defaults_text) or {}
    specs = yaml.safe_load(specs_file.read_text())
    options = specs.get("argument_specs", {}).get("main", {}).get("options", {}) or {}

    for name in sorted(set(defaults) - set(options)):
        problems.append(f"{role.name}: {name} is in defaults/main.yml but not in meta/argument_specs.yml")
    for name in sorted(set(options) - set(defaults)):
        problems.append(f"{role.name}: {name} is in meta/argument_specs.yml but not in defaults/main.yml")

    for name, spec in options.items():
        if not spec.get("description"):
            problems.append(f"{role.name}: {name} has no description in meta/argument_specs.yml")
        kind = spec.get("type")
        if kind not in PY_TYPES:
            problems.append(f"{role.name}: {name} has type {kind!r}; expected one of {sorted(PY_TYPES)}")
            continue
        if name not in defaults:
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue  # computed from facts or other variables at run time
        if kind in ("int", "float") and isinstance(value, bool):
            problems.append(f"{role.name}: {name} defaults to a boolean but is declared {kind}")
        elif not isinstance(value, PY_TYPES[kind]):
            problems.append(f"{role.name}: {name} defaults to {type(value).__name__} but is declared {kind}")
        if kind == "list" and "elements" in spec and isinstance(value, list):
            element_types = PY_TYPES.get(spec["elements"], (object,))
            if not all(isinstance(v, element_types) for v in value):
                problems.append(f"{role.name}: {name} has elements that are not {spec['elements']}")

    lines = defaults_text.splitlines()
    for i, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith(("#", "---")) and ":" in line:
            previous = lines[i - 1].strip() if i else ""
            if not previous.startswith("#"):
                problems.append(f"{role.name}: {line.split(':')[0]} in defaults/main.yml has no comment above it")
    return problems


def main(argv):
    roles_dir = Path(argv[1] if len(argv) > 1 else "roles")
    roles = sorted(p for p in roles_dir.iterdir() if (p / "tasks").is_dir())
    if not roles:
        print(f"no roles found under {roles_dir}", file=sys.stderr)
        return 1
    problems = [p for role in roles for p in check_role(role)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"argument specs: {len(roles)} roles checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
