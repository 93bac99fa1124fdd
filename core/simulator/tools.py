"""Deciding whether the simulated model calls a function, and with which arguments.

With ``tool_choice`` "auto" (the default) a function is called when the last message
is from the user and shares a word with the function's name or description, compared
on crude stems ("booking" ~ "book"); the name counts double. "required" always calls
the best match (or the first function), a named choice calls that function, "none"
never calls. After a tool result the model answers in text instead of calling again.
When the instructions give the rule for a function ("... call create_ticket"), "auto"
follows it instead: the function is called when the input asks for a person or reports
being blocked (``understanding.Reading.escalate``), otherwise the model answers in text.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from core.simulator.api_error import bad_request
from core.simulator.prompt import (
    STOPWORDS,
    keywords,
    last_user_text,
    proper_nouns,
    request_digest,
    seeded_rng,
    sentences,
    system_text,
)  # fmt: skip
from core.simulator.schema_instance import Hints, instance_for
from core.simulator.understanding import Reading, is_vague

# Words every function description uses; matching on them would call tools for anything.
_GENERIC = frozenset(
    {"get", "set", "function", "tool", "given", "return", "returns", "current", "value", "data", "user", "use", "call"}
)


def functions_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``function`` objects of the request's tools, checked for a name."""
    functions = []
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_request(
                "Missing required parameter: 'tools[].function.name'.", param=f"tools[{index}].function.name"
            )
        functions.append(function)
    return functions


def chosen_function(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function the model calls for this request, or ``None`` to answer in text."""
    functions = functions_of(body)
    choice = body.get("tool_choice", "auto")
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        for function in functions:
            if function["name"] == name:
                return function
        raise bad_request(
            f"Invalid value for 'tool_choice': no function named '{name}' was specified in 'tools'.",
            param="tool_choice",
        )
    messages = body["messages"]
    if choice == "auto" and messages[-1].get("role") != "user":
        return None
    if choice == "auto":
        ruled = _ruled_function(body, functions)
        if ruled is not None:
            return ruled if isinstance(ruled, dict) else None
    best = _best_match(functions, last_user_text(messages))
    if best is None and choice == "required":
        return functions[0]
    return best


def call_arguments(
    function: dict[str, Any], messages: list[dict[str, Any]], rng: random.Random, model: str = "gpt-4o-mini"
) -> str:
    """JSON arguments valid against the function's ``parameters`` schema, read from the request
    like a structured answer (an ID written in the input for ``customer_id``, a priority by cue)."""
    user = last_user_text(messages)
    found = sentences(user)
    reading = Reading(model, user, system_text(messages), rng)
    hints = Hints(words=keywords(user), places=proper_nouns(user), sentence=found[0] if found else "", reading=reading)
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    return json.dumps(instance_for(schema, rng=rng, hints=hints))


def _ruled_function(body: dict[str, Any], functions: list[dict[str, Any]]) -> dict[str, Any] | bool | None:
    """When the instructions say when to call a function ("... call create_ticket"), follow
    that rule: call it when the input asks for a person or reports being blocked (the
    escalation reading) with enough detail to act on, else answer in text (False).
    None: no such rule, so match by words."""
    system = system_text(body["messages"])
    for function in functions:
        if re.search(rf"\bcall\s+`?{re.escape(function['name'])}\b", system):
            reading = Reading(body["model"], last_user_text(body["messages"]), system, seeded_rng(request_digest(body)))
            return function if reading.escalate and not (is_vague(reading.body) and reading.vague) else False
    return None


def _best_match(functions: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    asked = {_stem(w) for w in re.findall(r"[a-z]+", text.lower())}
    best, best_score = None, 0
    for function in functions:
        name_words = re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", function["name"]).lower())
        description_words = re.findall(r"[a-z]+", str(function.get("description", "")).lower())
        score = 2 * len(_stems(name_words) & asked) + len(_stems(description_words) & asked)
        if score > best_score:
            best, best_score = function, score
    return best


def _stems(words: list[str]) -> set[str]:
    return {_stem(w) for w in words if w not in STOPWORDS and w not in _GENERIC and len(w) >= 3}


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
