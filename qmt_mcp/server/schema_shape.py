"""Output schemas in a shape that is small, portable and quick to check, with the same meaning.

MCP clients check every structured result against the tool's outputSchema (the Python SDK with
`jsonschema`, on every call), and `tools/list` is read into the model's context. pydantic writes
nested models as `$ref`s into `$defs`, which a validator resolves per value. This rewrites them:

- a `$ref` into `$defs` is replaced by the definition itself (our models are not recursive), so
  checking a success result resolves nothing;
- `title` and `default` are dropped: annotations a result never needs (pydantic titles merely
  restate field names), about a fifth of the bytes;
- the error envelope's body (31 codes and their texts, the same in every tool): it stays one
  `$defs/Error` per schema. A validator resolves it only for an error result, and tools/list is
  about a third smaller for it.

Nullable fields keep pydantic's `anyOf: [X, {"type": "null"}]`: type lists (`"type": [X, "null"]`)
are what some clients cannot take (the newer MCP Inspector's `--strict` flags each one), and checking
the two forms with `jsonschema` costs the same within noise (measured on a 60-bar kline result, a
preview, a quote and a placed order: see the README's Performance section).
"""

from __future__ import annotations

from typing import Any

_DEFS = "#/$defs/"
_ERROR = "Error"
_ANNOTATIONS = frozenset({"title", "default"})


def simplify(schema: dict[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = schema.get("$defs", {})
    out = _walk({k: v for k, v in schema.items() if k != "$defs"}, defs, ())
    if not isinstance(out, dict):
        raise TypeError("a schema must be an object")
    error = out.get("properties", {}).get("error")
    body = _nonnull(error)
    if body is not None:
        out["properties"]["error"] = _replace_nonnull(error, {"$ref": _DEFS + _ERROR})
        out["$defs"] = {_ERROR: body}
    return out


_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs"})        # names -> schemas
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})       # lists of schemas
_SUBSCHEMAS = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames",
                         "if", "then", "else"})                               # one schema


def _walk(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """One schema, rewritten; keyword values that are data (enum, const, required...) are kept as is."""
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        name = ref.removeprefix(_DEFS)
        if name in seen:
            raise ValueError(f"recursive schema through {name!r}: cannot inline")
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _walk(merged, defs, (*seen, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ANNOTATIONS:
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _walk(sub, defs, seen) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_walk(sub, defs, seen) for sub in value]
        elif key in _SUBSCHEMAS:
            out[key] = _walk(value, defs, seen)
        else:
            out[key] = value
    return out


def _nonnull(node: Any) -> dict[str, Any] | None:
    """The object schema of `X | None` (or of `X`)."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object":
        return node
    for branch in node.get("anyOf", ()):
        if isinstance(branch, dict) and branch.get("type") == "object":
            return branch
    return None


def _replace_nonnull(node: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "object":
        return new
    return {**node, "anyOf": [new if b is _nonnull(node) else b for b in node["anyOf"]]}
