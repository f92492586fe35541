"""Budgets (hard, soft, paced) with reserve/settle, and rate limits. See ``enforcer.py``."""

from modelmix.budgets.definitions import BudgetSpec, budget_from_dict, period_window
from modelmix.budgets.enforcer import BudgetContext, Budgets, Reservation
from modelmix.budgets.errors import BudgetExceeded, RateLimited
from modelmix.budgets.limits import RateLimit, RateLimiter, RateState
from modelmix.budgets.store import InMemorySpendStore, SpendStore

__all__ = [
    "BudgetContext",
    "BudgetExceeded",
    "BudgetSpec",
    "Budgets",
    "InMemorySpendStore",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RateState",
    "Reservation",
    "SpendStore",
    "budget_from_dict",
    "period_window",
]
