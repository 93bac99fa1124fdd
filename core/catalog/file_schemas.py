"""JSON Schemas of the two catalog file formats, as Python dicts.

They check shape and vocabulary (required fields, known teams, variable types, assertion
types). Value rules that a reviewer should see as findings rather than as a refused file
(temperature range, max_tokens > 0, whether an embedded JSON Schema is itself valid)
live in ``checks.py``, so each rule has one home.
"""

from __future__ import annotations

from core.catalog.spec import (
    DATA_CLASSIFICATIONS,
    MESSAGE_ROLES,
    PROMPT_NAME_PATTERN,
    REASONING_EFFORTS,
    RISK_TIERS,
    TEAMS,
    TOOL_NAME_PATTERN,
    VARIABLE_NAME_PATTERN,
    VARIABLE_TYPES,
)

_NON_EMPTY_TEXT = {"type": "string", "minLength": 1}

# "x-hint" (an annotation JSON Schema ignores) is what yaml_io says instead of quoting a
# regular expression or "[] should be non-empty" at the person who typed the value.
_PROMPT_NAME = {
    "type": "string",
    "pattern": PROMPT_NAME_PATTERN,
    "x-hint": "is not a valid name: lower-case letters and digits, words joined by '-' (e.g. refund-answer)",
}
_TOOL_NAME = {
    "type": "string",
    "pattern": TOOL_NAME_PATTERN,
    "x-hint": "is not a valid tool name: up to 64 letters, digits, '_' or '-'",
}

_RESPONSE_FORMAT = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["text", "json_object", "json_schema"]},
        "json_schema": {
            "type": "object",
            "required": ["name", "schema"],
            "properties": {
                "name": _TOOL_NAME,
                "description": {"type": "string"},
                "schema": {"type": "object"},
                "strict": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
    # The OpenAI shape: a json_schema format carries its schema, the others carry nothing.
    "if": {"properties": {"type": {"const": "json_schema"}}},
    "then": {"required": ["type", "json_schema"]},
    "else": {"not": {"required": ["json_schema"]}},
}

# The rule's condition is checked for meaning (one condition, pairs, a regex that
# compiles, fields the version has) by core.catalog.escalation, which names the rule.
_ESCALATION_RULE = {
    "type": "object",
    "required": ["name", "when", "action"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[a-z0-9]+(-[a-z0-9]+)*$",
            "x-hint": "is not a valid rule name: lower-case words joined by '-' (e.g. low-confidence)",
        },
        "when": {
            "type": "object",
            "minProperties": 1,
            "x-hint": "needs one condition, e.g. {mentions: [refund]} or {field: confidence, below: 0.6}",
            "properties": {
                "fails_schema": {"const": True},
                "matches": {"type": "string", "minLength": 1},
                "not_matches": {"type": "string", "minLength": 1},
                "field": {"type": "string", "pattern": r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"},
                "below": {"type": "number"},
                "above": {"type": "number"},
                "mentions": {"type": "array", "minItems": 1, "items": _NON_EMPTY_TEXT},
                "tool_calls": {"type": "array", "minItems": 1, "items": _NON_EMPTY_TEXT},
                "longer_than_tokens": {"type": "integer", "minimum": 0},
                "risk_flags": {"type": "array", "minItems": 1, "items": _NON_EMPTY_TEXT},
                "variable": {"type": "string", "pattern": VARIABLE_NAME_PATTERN},
                "equals": True,
                "in": {"type": "array", "minItems": 1},
            },
            "additionalProperties": False,
        },
        "action": {"enum": ["hold", "review_after", "block"]},
    },
    "additionalProperties": False,
}

PROMPT_FILE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Quorum prompt file (prompts/<name>.yaml)",
    "type": "object",
    "required": [
        "name",
        "team",
        "purpose",
        "risk_tier",
        "data_classification",
        "model",
        "messages",
    ],
    "properties": {
        "name": {**_PROMPT_NAME, "maxLength": 64},
        "team": {"enum": list(TEAMS)},
        "purpose": {**_NON_EMPTY_TEXT, "x-hint": "say what the prompt is for"},
        "risk_tier": {"enum": list(RISK_TIERS)},
        "data_classification": {"enum": list(DATA_CLASSIFICATIONS)},
        "model": _NON_EMPTY_TEXT,
        "params": {
            "type": "object",
            "properties": {
                "temperature": {"type": "number"},
                "max_tokens": {"type": "integer"},
                "response_format": _RESPONSE_FORMAT,
                "reasoning_effort": {"enum": list(REASONING_EFFORTS)},
            },
            "additionalProperties": False,
        },
        "variables": {
            "type": "object",
            "propertyNames": {
                "pattern": VARIABLE_NAME_PATTERN,
                "x-hint": "is not a valid variable name: lower-case letters, digits and '_', not starting with a digit",
            },
            "additionalProperties": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": list(VARIABLE_TYPES)},
                    "description": {"type": "string"},
                },
                "additionalProperties": False,
            },
        },
        "messages": {
            "type": "array",
            "minItems": 1,
            "x-hint": "write at least one message (an empty message does not count)",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": list(MESSAGE_ROLES)},
                    "content": _NON_EMPTY_TEXT,
                },
                "additionalProperties": False,
            },
        },
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "description", "parameters"],
                "properties": {
                    "name": _TOOL_NAME,
                    "description": {"type": "string"},
                    "parameters": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "escalation": {"type": "array", "items": _ESCALATION_RULE},
        "change_note": {"type": "string"},
    },
    "additionalProperties": False,
}

ASSERTION_TYPES = (
    "equals",
    "contains",
    "icontains",
    "not-contains",
    "starts-with",
    "regex",
    "is-json",
    "json-schema",
    "max-latency-ms",
    "max-cost-usd",
    "llm-rubric",
    "tool-call",
)

# What each assertion type's ``value`` must be; is-json takes none.
_ASSERTION_VALUE_SCHEMAS = {
    "equals": {},
    "contains": {"type": "string"},
    "icontains": {"type": "string"},
    "not-contains": {"type": "string"},
    "starts-with": {"type": "string"},
    "regex": {"type": "string", "minLength": 1},
    "json-schema": {"type": "object"},
    "max-latency-ms": {"type": "integer", "exclusiveMinimum": 0},
    "max-cost-usd": {"type": "number", "exclusiveMinimum": 0},
    "llm-rubric": {"type": "string", "minLength": 1},
    "tool-call": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
        "additionalProperties": False,
    },
}

_ASSERTION = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": list(ASSERTION_TYPES)},
        "value": True,
        "path": {"type": "string", "pattern": r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"},
        "weight": {"type": "number", "exclusiveMinimum": 0},
    },
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"type": {"const": kind}}},
            "then": {"required": ["value"], "properties": {"value": value_schema}},
        }
        for kind, value_schema in _ASSERTION_VALUE_SCHEMAS.items()
    ]
    + [
        {
            "if": {"properties": {"type": {"const": "is-json"}}},
            "then": {"not": {"required": ["value"]}},
        }
    ],
}

_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 1}

TESTSET_FILE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Quorum test set (prompts/testsets/<prompt-name>.yaml)",
    "type": "object",
    "required": ["prompt", "cases"],
    "properties": {
        "prompt": _PROMPT_NAME,
        "description": {"type": "string"},
        "pass_threshold": _THRESHOLD,
        "cases": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "variables", "assertions"],
                "properties": {
                    "id": {
                        **_PROMPT_NAME,
                        "x-hint": "is not a valid case id: lower-case letters and digits, words joined by '-'",
                    },
                    "description": {"type": "string"},
                    "variables": {"type": "object"},
                    "assertions": {"type": "array", "minItems": 1, "items": _ASSERTION},
                    "pass_threshold": _THRESHOLD,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
