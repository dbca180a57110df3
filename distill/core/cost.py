"""What teacher (and judge) tokens cost, and the budget that stops a run.

Tokens are counted as an API bills them: each sample's prompt tokens (the prompt once per sample:
one request per sample) and completion tokens, from the endpoint's `usage` or the engine's
outputs. Prices are money per million tokens, in whatever currency the user thinks in. A budget
is money (needs prices) or completion tokens; it is checked against everything an output holds,
earlier runs included, so re-running a stopped command does not spend the budget twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator


class CostSettings(BaseModel):
    """Prices and budget: fields shared by the configs of stages that sample a model."""

    price_in: float | None = Field(default=None, ge=0, description="Money per million prompt tokens (for the cost figure and --budget).")
    price_out: float | None = Field(default=None, ge=0, description="Money per million completion tokens (for the cost figure and --budget).")
    budget: float | None = Field(default=None, gt=0, description="Stop cleanly (resumable, exit 3) once the money spent on the output reaches this (needs the prices).")
    budget_tokens: int | None = Field(default=None, gt=0, description="Stop cleanly (resumable, exit 3) once the output holds this many completion tokens.")

    @model_validator(mode="after")
    def _budget_needs_prices(self) -> CostSettings:
        if self.budget is not None and self.price_in is None and self.price_out is None:
            raise ValueError("budget is money: set price_in/price_out (per million tokens), or use budget_tokens")
        return self


COST_FIELDS = tuple(CostSettings.model_fields)


@dataclass
class Spend:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        self.prompt_tokens += prompt_tokens or 0
        self.completion_tokens += completion_tokens or 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


def money(spend: Spend, settings: Any) -> float | None:
    """What `spend` cost at the settings' prices; None without prices."""
    if settings.price_in is None and settings.price_out is None:
        return None
    return (spend.prompt_tokens * (settings.price_in or 0.0) + spend.completion_tokens * (settings.price_out or 0.0)) / 1e6


def money_text(value: float) -> str:
    """Money as every table and message shows it: 4 significant digits without trailing zeros, never
    rounded to 0 (0.0003474, 0.06), whole units with thousands separated (12,346)."""
    if value == 0:
        return "0"
    text = f"{value:,.{max(0, 3 - math.floor(math.log10(abs(value))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def over_budget(spend: Spend, settings: Any) -> str | None:
    """Why `spend` (everything the output holds) has reached the budget, or None."""
    cost = money(spend, settings)
    if settings.budget is not None and cost is not None and cost >= settings.budget:
        return f"budget {money_text(settings.budget)} reached ({money_text(cost)} spent)"
    if settings.budget_tokens is not None and spend.completion_tokens >= settings.budget_tokens:
        return f"budget of {settings.budget_tokens:,} completion tokens reached ({spend.completion_tokens:,})"
    return None


def figures(spend: Spend, settings: Any, prefix: str = "") -> dict[str, Any]:
    """Summary entries: tokens, and money when prices are known."""
    out: dict[str, Any] = {f"{prefix}prompt_tokens": spend.prompt_tokens, f"{prefix}completion_tokens": spend.completion_tokens}
    cost = money(spend, settings)
    if cost is not None:
        out[f"{prefix}cost"] = round(cost, 6)
    return out
