"""The models the simulator answers for, and what kind of model each one is.

A dated snapshot such as ``gpt-4o-2024-08-06`` is accepted wherever its base name is,
because applications pin snapshots and the simulator should not make them change that.
"""

from __future__ import annotations

import re
from typing import Any, Literal

ModelKind = Literal["chat", "embedding", "moderation"]

CHAT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-3.5-turbo",
)

EMBEDDING_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

MODERATION_MODELS: tuple[str, ...] = ("omni-moderation-latest", "text-moderation-latest")

_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")

# Fixed so that the model list is stable across runs (OpenAI reports a creation time too).
_CATALOG_CREATED = 1_700_000_000


def base_model(model: str) -> str:
    """The model name without a dated snapshot suffix."""
    return _SNAPSHOT_SUFFIX.sub("", model)


def model_kind(model: str) -> ModelKind | None:
    """What the model does, or ``None`` when the simulator does not know it."""
    base = base_model(model)
    if base in CHAT_MODELS:
        return "chat"
    if base in EMBEDDING_DIMENSIONS:
        return "embedding"
    if base in MODERATION_MODELS:
        return "moderation"
    return None


def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 models think before answering and bill reasoning tokens."""
    base = base_model(model)
    return bool(re.match(r"o\d", base)) or base.startswith("gpt-5")


def answer_sentences(model: str) -> int:
    """How many body sentences a model writes: smaller models are terser, as in life."""
    base = base_model(model)
    if base.endswith("-nano"):
        return 1
    if base.endswith("-mini") or base == "gpt-3.5-turbo":
        return 2
    return 3


def list_models() -> dict[str, Any]:
    """The ``GET /v1/models`` body."""
    names = [*CHAT_MODELS, *EMBEDDING_DIMENSIONS, *MODERATION_MODELS]
    return {"object": "list", "data": [model_object(name) for name in names]}


def model_object(name: str) -> dict[str, Any]:
    """One entry of the model list, also the ``GET /v1/models/{id}`` body."""
    return {"id": name, "object": "model", "created": _CATALOG_CREATED, "owned_by": "quorum-simulator"}
