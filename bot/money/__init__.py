"""Money, in one place: amounts, prices and estimates, budgets and periods,
quotas, admission, and what each provider call is charged.

Pure rules only: the stores execute what this package decides, and nothing
here imports a store or a platform SDK.
"""

from bot.money.amounts import MICROS_PER_USD, from_micros, reported_usd, to_micros, usd

__all__ = ["MICROS_PER_USD", "from_micros", "reported_usd", "to_micros", "usd"]
