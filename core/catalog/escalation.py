"""Escalation rules of a prompt version: when an answer goes to a person instead of (or as
well as) to the caller.

A version's YAML carries an ``escalation:`` list; each rule has a name, one condition
(``when``) and an action::

    escalation:
      - name: low-confidence
        when: {field: confidence, below: 0.6}   # a number in the JSON answer
        action: hold                            # hold | review_after | block
      - name: legal-threat
        when: {mentions: [lawsuit, attorney]}
        action: review_after

Conditions on the answer: ``fails_schema: true`` (not valid against the version's
``response_format`` JSON schema, or not JSON at all), ``matches`` / ``not_matches`` (a
regular expression), ``field`` with ``below`` or ``above``, ``mentions`` (whole words,
any case), ``tool_calls`` (calls to these functions), ``longer_than_tokens``. On the
request: ``risk_flags`` (guardrail findings such as ``pii.email`` or ``moderation``,
matched as prefixes) and ``variable`` with ``equals`` or ``in``.

A field the answer lacks, or that is not a number, counts as below and above any
threshold: an answer that does not say how sure it is gets a person's look.

Rules are compiled once per version (``compile_rules``) and evaluated with no I/O, so the
playground, experiments and the gateway apply the same language the same way. When
several rules fire, the strongest action wins (block, then hold, then review after).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from core.catalog.answer_schema import compile_subset

HOLD, REVIEW_AFTER, BLOCK = "hold", "review_after", "block"
ACTIONS = (BLOCK, HOLD, REVIEW_AFTER)  # strongest first
RULE_NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"

# Each condition: its keys (the first names it), and for pairs the keys that may go with it.
_PAIRED = {"field": ("below", "above"), "variable": ("equals", "in")}
_SINGLE = ("fails_schema", "matches", "not_matches", "mentions", "tool_calls", "longer_than_tokens", "risk_flags")
CONDITIONS = _SINGLE + tuple(_PAIRED)
_MAX_COMPILED = 1024


@dataclass(frozen=True)
class EscalationRule:
    """One rule as written: ``when`` is the condition mapping from the YAML."""

    name: str
    when: Mapping[str, Any]
    action: str


@dataclass
class Answer:
    """What the rules read about one call: the answer and the request it came from."""

    text: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    tool_names: Sequence[str] = ()
    output_tokens: int = 0
    risk_flags: Sequence[str] = ()
    _parsed: Any = field(default=None, init=False, repr=False)
    _parse_tried: bool = field(default=False, init=False, repr=False)
    _lowered: str | None = field(default=None, init=False, repr=False)

    def lowered(self) -> str:
        if self._lowered is None:
            self._lowered = self.text.lower()
        return self._lowered

    def parsed(self) -> Any:
        """The answer as JSON (parsed once for all the rules), or None when it is not JSON."""
        if not self._parse_tried:
            self._parse_tried = True
            try:
                self._parsed = json.loads(self.text)
            except (ValueError, TypeError):
                self._parsed = None
        return self._parsed


@dataclass(frozen=True)
class Fired:
    """The outcome of the rules on one answer: the strongest action and every rule that fired."""

    action: str
    rule: str  # the first rule with the strongest action
    rules: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[tuple[str, str, Callable[[Answer], bool]], ...]

    def evaluate(self, answer: Answer) -> Fired | None:
        fired = [(name, action) for name, action, test in self.rules if test(answer)]
        if not fired:
            return None
        strongest = min(fired, key=lambda pair: ACTIONS.index(pair[1]))
        return Fired(action=strongest[1], rule=strongest[0], rules=tuple(name for name, _ in fired))


# ---- parsing -------------------------------------------------------------------------------


def rules_from_content(items: Sequence[Mapping[str, Any]] | None) -> tuple[EscalationRule, ...]:
    return tuple(EscalationRule(str(r["name"]), dict(r["when"]), str(r["action"])) for r in items or ())


def rules_content(rules: Sequence[EscalationRule]) -> list[dict[str, Any]]:
    return [{"name": r.name, "when": dict(r.when), "action": r.action} for r in rules]


def rule_problems(
    rules: Sequence[EscalationRule],
    *,
    response_schema: Mapping[str, Any] | None,
    json_answer: bool,
    variables: Sequence[str],
    tools: Sequence[str],
) -> list[str]:
    """Why rules cannot run on this version, each message naming its rule; empty when fine."""
    problems: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        where = f"escalation rule '{rule.name}'"
        if rule.name in seen:
            problems.append(f"{where} is defined twice")
        seen.add(rule.name)
        if not re.match(RULE_NAME_PATTERN, rule.name):
            problems.append(f"{where}: a name is lower-case words joined by '-' (e.g. low-confidence)")
        if rule.action not in ACTIONS:
            problems.append(f"{where}: action must be one of hold, review_after, block (got {rule.action!r})")
        try:
            _predicate(rule.when)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        kind = _kind(rule.when)
        if kind == "field":
            path = str(rule.when["field"])
            if response_schema is None:
                problems.append(f"{where}: reads the field '{path}' but the version has no response_format JSON schema")
            elif not _schema_has(response_schema, path):
                problems.append(f"{where}: reads the field '{path}', which the version's JSON schema does not have")
        elif kind == "fails_schema" and response_schema is None and not json_answer:
            problems.append(f"{where}: fails_schema needs a JSON response_format on the version")
        elif kind == "variable" and str(rule.when["variable"]) not in variables:
            problems.append(
                f"{where}: reads the variable '{rule.when['variable']}', which the version does not declare"
            )
        elif kind == "tool_calls":
            unknown = sorted(set(map(str, rule.when["tool_calls"])) - set(tools))
            if unknown:
                problems.append(f"{where}: watches calls to {', '.join(unknown)}, which the version does not define")
    return problems


def _kind(when: Mapping[str, Any]) -> str:
    present = [k for k in CONDITIONS if k in when]
    if len(present) != 1:
        named = ", ".join(CONDITIONS)
        raise ValueError(
            f"'when' needs exactly one condition of: {named}"
            if not present
            else f"'when' has {len(present)} conditions ({', '.join(present)}); write one rule per condition"
        )
    kind = present[0]
    allowed = {kind, *_PAIRED.get(kind, ())}
    extra = sorted(set(when) - allowed)
    if extra:
        raise ValueError(f"'{kind}' does not take {', '.join(extra)}")
    return kind


def _schema_has(schema: Mapping[str, Any], path: str) -> bool:
    node: Any = schema
    for part in path.split("."):
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or part not in properties:
            return False
        node = properties[part]
    return True


# ---- compiling -----------------------------------------------------------------------------


def _predicate(when: Mapping[str, Any], response_schema: Mapping[str, Any] | None = None) -> Callable[[Answer], bool]:
    """The compiled test of one condition; ValueError (for people) when it does not parse."""
    if not isinstance(when, Mapping):
        raise ValueError("'when' must be a mapping such as {mentions: [refund]}")
    kind = _kind(when)
    value = when[kind]
    if kind == "fails_schema":
        if value is not True:
            raise ValueError("fails_schema takes true")
        if response_schema is None:
            return lambda a: a.parsed() is None
        fast = compile_subset(response_schema)
        if fast is not None:
            return lambda a: a.parsed() is None or not fast(a.parsed())
        validator = jsonschema.Draft202012Validator(dict(response_schema))
        return lambda a: a.parsed() is None or not validator.is_valid(a.parsed())
    if kind in ("matches", "not_matches"):
        pattern = _regex(value, kind)
        return (
            (lambda a: pattern.search(a.text) is not None)
            if kind == "matches"
            else (lambda a: not pattern.search(a.text))
        )
    if kind == "mentions":
        terms = _texts(value, kind)
        words = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
        if not all(t.isascii() for t in terms):
            return lambda a: words.search(a.text) is not None
        lowered = tuple(t.lower() for t in terms)

        def mentions(a: Answer) -> bool:
            # Most answers mention none of the terms: a substring test in C says so in a
            # microsecond; the word-boundary search runs only on a hit (ASCII, where
            # lower() and the regex agree on case).
            if a.text.isascii() and not any(t in a.lowered() for t in lowered):
                return False
            return words.search(a.text) is not None

        return mentions
    if kind == "tool_calls":
        names = frozenset(_texts(value, kind))
        return lambda a: any(n in names for n in a.tool_names)
    if kind == "risk_flags":
        prefixes = tuple(_texts(value, kind))
        return lambda a: any(flag.startswith(prefixes) for flag in a.risk_flags)
    if kind == "longer_than_tokens":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("longer_than_tokens takes a whole number of tokens, 0 or more")
        return lambda a: a.output_tokens > value
    if kind == "field":
        return _threshold(when, str(value))
    return _variable_test(when, str(value))


def _regex(value: Any, kind: str) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{kind} takes a regular expression")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"{kind}: the regular expression does not parse ({exc})") from None


def _texts(value: Any, kind: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{kind} takes a non-empty list of words")
    return [v.strip() for v in value]


def _threshold(when: Mapping[str, Any], path: str) -> Callable[[Answer], bool]:
    bounds = [k for k in ("below", "above") if k in when]
    if len(bounds) != 1:
        raise ValueError("field takes one of below or above (a number)")
    limit = when[bounds[0]]
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise ValueError(f"{bounds[0]} takes a number, got {limit!r}")
    parts = tuple(path.split("."))
    below = bounds[0] == "below"

    def test(answer: Answer) -> bool:
        node = answer.parsed()
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return True
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, int | float):
            return True
        return node < limit if below else node > limit

    return test


def _variable_test(when: Mapping[str, Any], name: str) -> Callable[[Answer], bool]:
    if "equals" in when and "in" not in when:
        expected = when["equals"]
        return lambda a: a.variables.get(name) == expected
    if "in" in when and "equals" not in when and isinstance(when["in"], list) and when["in"]:
        choices = list(when["in"])
        return lambda a: a.variables.get(name) in choices
    raise ValueError("variable takes equals (a value) or in (a non-empty list)")


def compile_rules(rules: Sequence[EscalationRule], response_schema: Mapping[str, Any] | None) -> CompiledRules:
    """Rules ready to evaluate; ValueError naming the rule for one that does not parse."""
    compiled = []
    for rule in rules:
        try:
            compiled.append((rule.name, rule.action, _predicate(rule.when, response_schema)))
        except ValueError as exc:
            raise ValueError(f"escalation rule '{rule.name}': {exc}") from None
    return CompiledRules(tuple(compiled))


_compiled: dict[Any, tuple[Sequence[EscalationRule], Mapping[str, Any] | None, CompiledRules]] = {}


def compiled_for(key: Any, rules: Sequence[EscalationRule], response_schema: Mapping[str, Any] | None) -> CompiledRules:
    """``compile_rules``, once per ``key`` (a version id: versions never change).

    A hit is compared with the rules as written (a few microseconds), so a key that now
    names other content (a reset database reusing ids) compiles again instead of lying."""
    found = _compiled.get(key)
    if found is not None and found[0] == rules and found[1] == response_schema:
        return found[2]
    if len(_compiled) >= _MAX_COMPILED:
        _compiled.clear()
    compiled = compile_rules(rules, response_schema)
    _compiled[key] = (rules, response_schema, compiled)
    return compiled


def response_schema_of(response_format: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if response_format and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, Mapping) else None
    return None
