"""Configuration: schema validation with messages that name the offending key."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
SCHEMA_PATH = SCHEMA_DIR / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration mistake, phrased for the user (no traceback needed)."""


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The shared schema with every study's part (schemas/studies/<key>.schema.yaml)
    merged in as the property <key>: one validation for the whole config."""
    with open(path) as f:
        schema = yaml.safe_load(f)
    for part in sorted((path.parent / "studies").glob("*.schema.yaml")):
        with open(part) as f:
            schema["properties"][part.name.removesuffix(".schema.yaml")] = yaml.safe_load(f)
    return schema


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        keys = ", ".join(repr(k) for k in extra)
        return f"unknown key {keys} in '{where}'{hint}"
    if error.validator == "required":
        return f"missing key in '{where}': {error.message}"
    if error.validator == "propertyNames":
        return f"invalid name {error.instance!r} in '{where}': {error.message}"
    return f"invalid value for '{where}': {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> None:
    """Raise ConfigError naming every offending key (schema + cross-references)."""
    schema = schema if schema is not None else load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors]
    if not problems:
        problems = _cross_reference_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _cross_reference_problems(config: dict) -> list[str]:
    """What the schema cannot express: each enabled study's own checks (the registry)."""
    from ncrepro.studies import check_config

    return check_config(config)


def load_config(*paths: str | Path) -> dict:
    """Load and deep-merge YAML files in order (as Snakemake does with --configfile)."""
    config: dict = {}
    for path in paths:
        with open(path) as f:
            deep_update(config, yaml.safe_load(f) or {})
    return config


def deep_update(base: dict, other: dict) -> dict:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base
