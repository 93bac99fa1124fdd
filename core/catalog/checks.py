"""Static checks run when a version is submitted for review, before any model call.

``static_checks`` never raises: it returns findings, errors that block submission and
warnings a reviewer should read. Secrets are found with the project's one secret
detector, ``core.guardrails.find_secrets`` (the same one the gateway runs on every
request), so a key that would be blocked at run time is also refused at submission; a
finding shows the detector's masked form only, because findings end up in the audit log
and on screens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import jsonschema
from jinja2 import TemplateSyntaxError, meta, nodes

from core.catalog.escalation import response_schema_of, rule_problems
from core.catalog.render import message_label
from core.catalog.sandbox import MAX_RANGE, MAX_RENDERED_CHARS, TEMPLATE_ENVIRONMENT
from core.catalog.spec import VersionSpec
from core.guardrails.secrets import find_secrets

ERROR = "error"
WARNING = "warning"

# The detector's kinds, as a reviewer reads them.
_SECRET_KIND_NAMES = {
    "openai_api_key": "OpenAI API key",
    "aws_access_key_id": "AWS access key id",
    "aws_secret_access_key": "AWS secret access key",
    "github_token": "GitHub token",
    "slack_token": "Slack token",
    "slack_webhook": "Slack webhook URL",
    "private_key": "private key",
}


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR or WARNING
    code: str  # stable machine name, e.g. 'undeclared-variable'
    message: str  # for people; never contains a secret


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def static_checks(version: VersionSpec) -> list[Finding]:
    findings: list[Finding] = []
    findings += _template_findings(version)
    findings += _secret_findings(version)
    findings += _schema_findings(version)
    findings += _param_findings(version)
    findings += [Finding(ERROR, "escalation-rule", problem) for problem in escalation_problems(version)]
    return findings


def escalation_problems(version: VersionSpec) -> list[str]:
    """Why the version's escalation rules cannot run, each message naming its rule."""
    if not version.escalation:
        return []
    response_format = version.params.response_format or {}
    return rule_problems(
        version.escalation,
        response_schema=response_schema_of(response_format),
        json_answer=response_format.get("type") in ("json_object", "json_schema"),
        variables=version.variable_names,
        tools=[t.name for t in version.tools],
    )


def _template_findings(version: VersionSpec) -> list[Finding]:
    findings = []
    used: set[str] = set()
    declared = set(version.variable_names)
    for index, message in enumerate(version.messages):
        label = message_label(index, message.role)
        try:
            tree = TEMPLATE_ENVIRONMENT.parse(message.content)
        except TemplateSyntaxError as exc:
            findings.append(Finding(ERROR, "template-syntax", f"{label}, line {exc.lineno}: {exc.message}"))
            continue
        names = meta.find_undeclared_variables(tree)
        used |= names
        for name in sorted(names - declared):
            findings.append(Finding(ERROR, "undeclared-variable", f"{label} uses '{name}', which is not declared"))
        findings += [Finding(severity, code, f"{label}: {text}") for severity, code, text in _costly_constructs(tree)]
        for attribute in sorted(_private_attributes(tree)):
            findings.append(
                Finding(
                    ERROR,
                    "unsafe-attribute",
                    f"{label} reads '{attribute}', which the template sandbox refuses",
                )
            )
    if not any(f.code == "template-syntax" for f in findings):
        # With a template that does not parse, 'unused' would be a guess.
        for name in version.variable_names:
            if name not in used:
                findings.append(Finding(WARNING, "unused-variable", f"variable '{name}' is declared but never used"))
    return findings


def _private_attributes(tree: nodes.Template) -> set[str]:
    return {node.attr for node in tree.find_all(nodes.Getattr) if node.attr.startswith("_")}


def _costly_constructs(tree: nodes.Template) -> list[tuple[str, str, str]]:
    """Loops and values the render budget would stop (errors) or may stop (warnings).

    The sandbox refuses them at run time anyway; saying so at submission keeps a template
    that fails on some inputs, or on every call, from reaching review."""
    found = []
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "range"):
            continue
        bounds = [_constant(arg) for arg in call.args]
        if any(b is None for b in bounds) or call.kwargs or call.dyn_args:
            found.append(
                (
                    WARNING,
                    "unbounded-range",
                    f"line {call.lineno}: range() takes its bound from a variable; the sandbox stops "
                    f"past {MAX_RANGE:,} numbers",
                )
            )
            continue
        numbers = [b for b in bounds if isinstance(b, int)]
        if len(numbers) != len(bounds) or not numbers:
            continue
        try:
            length = len(range(*numbers))
        except (TypeError, ValueError) as exc:  # a zero step, more than three arguments
            found.append(
                (ERROR, "bad-range", f"line {call.lineno}: {exc}; this range() fails every time the template renders")
            )
            continue
        if length > MAX_RANGE:
            found.append(
                (
                    ERROR,
                    "range-too-large",
                    f"line {call.lineno}: range() of {length:,} numbers; the sandbox allows {MAX_RANGE:,}",
                )
            )
    for operation in tree.find_all(nodes.Mul):
        left, right = _constant(operation.left), _constant(operation.right)
        for sized, count in ((left, right), (right, left)):
            if (
                isinstance(sized, str | list | tuple)
                and isinstance(count, int)
                and len(sized) * count > MAX_RENDERED_CHARS
            ):
                found.append(
                    (
                        ERROR,
                        "repetition-too-large",
                        f"line {operation.lineno}: repeats a value into {len(sized) * count:,} characters; "
                        f"the sandbox allows {MAX_RENDERED_CHARS:,}",
                    )
                )
    for loop in tree.find_all(nodes.For):
        for assign in loop.find_all(nodes.Assign):
            target = _target_key(assign.target)
            if target is None:
                continue
            value = [assign.node, *assign.node.find_all(nodes.Node)]
            uses = sum(1 for node in value if _target_key(node) == target)
            grows = uses >= 2 or (uses and any(isinstance(node, nodes.Mul) for node in value))
            if grows:
                found.append(
                    (
                        ERROR,
                        "self-doubling",
                        f"line {assign.lineno}: '{'.'.join(target)}' is built from itself more than once "
                        "inside a loop, so it doubles on every pass",
                    )
                )
    return found


def _constant(node: nodes.Node) -> object:
    """The value of a constant expression (``10**9``, ``"ab"``, ``[1, 2]``), else None.

    Jinja's own ``as_const`` gives up on operators the sandbox intercepts, which are
    exactly the ones that matter here; exponents stay small so this stays cheap."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_constant(item) for item in node.items]
        return None if any(i is None for i in items) else items
    if isinstance(node, nodes.Neg):
        value = _constant(node.node)
        return -value if isinstance(value, int | float) else None
    if isinstance(node, nodes.Pow | nodes.Mul | nodes.Add | nodes.Sub):
        left, right = _constant(node.left), _constant(node.right)
        if not (isinstance(left, int | float) and isinstance(right, int | float)):
            return None
        if isinstance(node, nodes.Pow):
            return left**right if abs(right) <= 64 and abs(left) < 2**64 else None
        if isinstance(node, nodes.Mul):
            return left * right
        return left + right if isinstance(node, nodes.Add) else left - right
    return None


def _target_key(node: nodes.Node) -> tuple[str, ...] | None:
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.NSRef):
        return (node.name, node.attr)
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return (node.node.name, node.attr)
    return None


def _scanned_texts(version: VersionSpec) -> Iterator[tuple[str, str, str]]:
    """(code, where, text) for every place a secret could have been pasted."""
    for index, message in enumerate(version.messages):
        yield "secret-in-template", message_label(index, message.role), message.content
    for variable in version.variables:
        yield "secret-in-template", f"description of variable '{variable.name}'", variable.description
    for tool in version.tools:
        text = json.dumps({"description": tool.description, "parameters": tool.parameters})
        yield "secret-in-tool-schema", f"tool '{tool.name}'", text
    if version.params.response_format:
        yield "secret-in-tool-schema", "response_format", json.dumps(version.params.response_format)


def _secret_findings(version: VersionSpec) -> list[Finding]:
    findings = []
    for code, where, text in _scanned_texts(version):
        for secret in find_secrets(text):
            kind = _SECRET_KIND_NAMES.get(secret.kind, secret.kind.replace("_", " "))
            findings.append(Finding(ERROR, code, f"{where} contains what looks like a {kind} ({secret.masked})"))
    return findings


def _schema_findings(version: VersionSpec) -> list[Finding]:
    findings = []
    response_format = version.params.response_format or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        problem = _json_schema_problem(schema)
        if problem:
            findings.append(Finding(ERROR, "invalid-response-schema", f"response_format schema: {problem}"))
    if response_format.get("type") in ("json_object", "json_schema"):
        # The API refuses json_object unless the word JSON appears in the messages.
        if not any("json" in m.content.lower() for m in version.messages):
            findings.append(
                Finding(WARNING, "json-not-mentioned", "a JSON response format is set but no message mentions JSON")
            )
    seen: set[str] = set()
    for tool in version.tools:
        if tool.name in seen:
            findings.append(Finding(ERROR, "duplicate-tool", f"tool '{tool.name}' is defined twice"))
        seen.add(tool.name)
        problem = _json_schema_problem(tool.parameters)
        if problem is None and tool.parameters.get("type") != "object":
            problem = "the parameters schema must have type 'object'"
        if problem:
            findings.append(Finding(ERROR, "invalid-tool-schema", f"tool '{tool.name}' parameters: {problem}"))
    return findings


def _json_schema_problem(schema: object) -> str | None:
    if not isinstance(schema, dict):
        return "a JSON Schema must be an object"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        return f"{where}: {exc.message}" if where else exc.message
    return None


def _param_findings(version: VersionSpec) -> list[Finding]:
    findings = []
    temperature = version.params.temperature
    if temperature is not None and not 0 <= temperature <= 2:
        findings.append(Finding(ERROR, "temperature-range", f"temperature {temperature} is outside [0, 2]"))
    max_tokens = version.params.max_tokens
    if max_tokens is not None and max_tokens <= 0:
        findings.append(Finding(ERROR, "max-tokens", f"max_tokens must be positive, got {max_tokens}"))
    if version.params.reasoning_effort and temperature is not None:
        findings.append(
            Finding(
                WARNING,
                "temperature-with-reasoning",
                "reasoning models ignore or refuse temperature; leave it out when reasoning_effort is set",
            )
        )
    return findings
