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


def _resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = root["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node if isinstance(node, dict) else {}


def _branches(node: dict, root: dict) -> list[dict]:
    node = _resolve(node, root)
    alternatives = node.get("oneOf", []) + node.get("anyOf", [])
    return [node] + [b for alt in alternatives for b in _branches(alt, root)]


def _types(node: dict, root: dict) -> set[str]:
    """The JSON types a schema node accepts (empty: it does not say)."""
    found = set()
    for branch in _branches(node, root):
        kind = branch.get("type")
        found |= set(kind) if isinstance(kind, list) else ({kind} if kind else set())
        for value in branch.get("enum", []) + ([branch["const"]] if "const" in branch else []):
            found.add(
                {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
                    type(value), "other"
                )
            )
    return found


def _scalar(text: str, types: set[str]):
    """`text` as the non-string type the schema wants, or unchanged."""
    lowered = text.strip().lower()
    if "boolean" in types and lowered in ("true", "false", "yes", "no", "on", "off"):
        return lowered in ("true", "yes", "on")
    if "null" in types and lowered in ("null", "~", "none"):
        return None
    for kind, parse in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return parse(text)
            except ValueError:
                pass
    return text


def _child(node: dict, root: dict, key, container: type) -> dict:
    """The schema node of `key` inside a value of type `container`."""
    for branch in _branches(node, root):
        if container is dict and ("properties" in branch or "additionalProperties" in branch):
            sub = branch.get("properties", {}).get(key)
            if sub is None and isinstance(branch.get("additionalProperties"), dict):
                sub = branch["additionalProperties"]
            if sub is not None:
                return sub
        if container is list and isinstance(branch.get("items"), dict):
            return branch["items"]
    return {}


def coerce_to_schema(value, node: dict, root: dict):
    """`value` with strings turned into the numbers/booleans the schema expects there.

    Snakemake passes the values of the map form `--config 'data={download: true}'` as
    strings; this makes them what a config file would give. Only where the schema
    does not accept a string; containers are updated in place."""
    if isinstance(value, str):
        types = _types(node, root)
        return value if not types or "string" in types else _scalar(value, types)
    if isinstance(value, dict):
        for key in value:
            value[key] = coerce_to_schema(value[key], _child(node, root, key, dict), root)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = coerce_to_schema(item, _child(node, root, i, list), root)
    return value


def validate_config(config: dict, schema: dict | None = None) -> None:
    """Raise ConfigError naming every offending key (schema + cross-references).
    Command-line strings are first coerced to the schema's types, in place."""
    schema = schema if schema is not None else load_schema()
    coerce_to_schema(config, schema, schema)
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
        try:
            with open(path) as f:
                loaded = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of keys at the top level")
        deep_update(config, loaded)
    return config


def deep_update(base: dict, other: dict) -> dict:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base
