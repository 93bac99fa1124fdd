"""What each model accepts: its output-token limit and context window (data/pricing.yaml
``limits``), so that a request no model would serve is refused as invalid (400) rather
than budgeted, and refused as "over budget" for a cost it could never reach."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from core.budgets.pricing_file import DEFAULT_PRICING_PATH


@dataclass(frozen=True)
class ModelLimits:
    max_output_tokens: int | None
    context_window: int | None


@lru_cache(maxsize=4)
def _table(path: str) -> tuple[dict[str, ModelLimits], dict[str, str]]:
    # The file is validated whole (schema included) when the price book reads it.
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    limits = {
        model: ModelLimits(entry.get("max_output_tokens"), entry.get("context_window"))
        for model, entry in (document.get("limits") or {}).items()
    }
    return limits, dict(document.get("aliases") or {})


def limits_for(model: str, path: Path | str = DEFAULT_PRICING_PATH) -> ModelLimits | None:
    """The model's limits (a snapshot's through its alias), or None when the file names none."""
    limits, aliases = _table(str(path))
    return limits.get(model) or limits.get(aliases.get(model, ""))
