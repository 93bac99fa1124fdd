"""``/v1/embeddings``: deterministic unit vectors.

A text's vector is the normalised sum of one pseudo-random vector per word (hashed from
the model and the word), so the same text always gets the same vector and texts that
share words are measurably closer than unrelated ones, which is enough for testing
similarity search. ``dimensions`` shortens and renormalises, as OpenAI does.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

from core.simulator.api_error import bad_request, model_not_found, wrong_endpoint
from core.simulator.catalog import EMBEDDING_DIMENSIONS, base_model, model_kind
from core.simulator.prompt import estimate_tokens


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """The ``CreateEmbeddingResponse`` body for a parsed request."""
    model = body.get("model")
    if not isinstance(model, str):
        raise bad_request("Missing required parameter: 'model'.", param="model")
    kind = model_kind(model)
    if kind is None:
        raise model_not_found(model)
    if kind != "embedding":
        raise wrong_endpoint(model, "v1/embeddings")
    texts = _inputs(body.get("input"))
    size = _dimensions(model, body.get("dimensions"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embed(model, text, size)
        encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(max(1, estimate_tokens(t)) for t in texts)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def embed(model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector for ``text``: the same text and model give the same vector."""
    full = EMBEDDING_DIMENSIONS[base_model(model)]
    total = [0.0] * full
    for word in re.findall(r"\w+", text.lower()) or [text]:
        raw = hashlib.shake_256(f"{base_model(model)}|{word}".encode()).digest(full)
        for i, byte in enumerate(raw):
            total[i] += byte - 127.5
    shortened = total[:dimensions]
    norm = math.sqrt(sum(v * v for v in shortened)) or 1.0
    return [v / norm for v in shortened]


def _inputs(value: object) -> list[str]:
    """Accepts a string, a list of strings, or token arrays (rendered as their numbers)."""
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        texts = [" ".join(map(str, value))]
    elif isinstance(value, list) and value and all(isinstance(v, (str, list)) for v in value):
        texts = [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    else:
        raise bad_request("'$.input' is invalid. Please check the API reference.", param="input")
    if any(not t for t in texts):
        raise bad_request("'$.input' is invalid: input cannot be an empty string.", param="input")
    return texts


def _dimensions(model: str, requested: object) -> int:
    full = EMBEDDING_DIMENSIONS[base_model(model)]
    if requested is None:
        return full
    if base_model(model) == "text-embedding-ada-002":
        raise bad_request("This model does not support specifying dimensions.", param="dimensions")
    if not isinstance(requested, int) or not 1 <= requested <= full:
        raise bad_request(f"'dimensions' must be an integer between 1 and {full}.", param="dimensions")
    return requested
