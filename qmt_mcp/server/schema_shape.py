"""Output schemas in the shape clients validate fastest, with the same meaning.

MCP clients check every structured result against the tool's outputSchema (the Python SDK with
`jsonschema`, on every call). pydantic writes `X | None` as `anyOf: [X, {"type": "null"}]` and nested
models as `$ref`s into `$defs`; a validator walks each `anyOf` branch and resolves each `$ref` per
value, which made checking a preview cost more than the whole round trip of the SDK's own floor.
This rewrites both into forms that accept exactly the same documents:

- a `$ref` into `$defs` is replaced by the definition itself (our models are not recursive);
- `anyOf: [{"type": T, ...}, {"type": "null"}]` becomes `{"type": [T, "null"], ...}` when every
  other keyword of the branch only constrains values of its own type (`properties`, `items`,
  `minimum`, ...) or only annotates: null still passes and everything else is checked as before. A
  branch with `enum`, `const` or a combinator, which would judge null too, is left as it was.
"""

from __future__ import annotations

from typing import Any

_DEFS = "#/$defs/"
_NULL = {"type": "null"}
# Keywords that say nothing about a null instance: type-specific assertions and annotations.
_TYPE_SCOPED = frozenset({
    "type", "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
    "contains", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
    "maxLength", "pattern", "format", "title", "description", "default", "examples",
})


def simplify(schema: dict[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = schema.get("$defs", {})
    out = _walk({k: v for k, v in schema.items() if k != "$defs"}, defs, ())
    if not isinstance(out, dict):
        raise TypeError("a schema must be an object")
    return out


def _walk(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_walk(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        name = ref.removeprefix(_DEFS)
        if name in seen:
            raise ValueError(f"recursive schema through {name!r}: cannot inline")
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _walk(merged, defs, (*seen, name))
    out = {k: _walk(v, defs, seen) for k, v in node.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and _NULL in branches:
        other = branches[0] if branches[1] == _NULL else branches[1]
        if isinstance(other, dict) and isinstance(other.get("type"), str) and set(other) <= _TYPE_SCOPED:
            rest = {k: v for k, v in out.items() if k != "anyOf"}
            clash = set(rest) & set(other)
            if not clash - {"title", "description"}:
                return {**other, **rest, "type": [other["type"], "null"]}
    return out
