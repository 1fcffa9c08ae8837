"""Money, in one place: amounts, prices and estimates, budgets and periods,
quotas, admission, and what each provider call is charged.

- amounts: micro-dollars, usd(), a route's reported charge (reported_usd);
- pricing: a model's price table, its worst-case estimate and settled cost;
- estimates: what a request holds (the max over its fallbacks and gateways)
  and how that sits with its budgets (fits, near the alert line);
- budgets, quotas: periods, limits, statuses, a budget as a moderator types it;
- admission: whether a submit is admitted, and the Charge type;
- charges: what a success, a failure or a hedged call is charged.

Pure rules only: the service, the worker and the stores execute what this
package decides, and nothing here imports a store, a provider or a platform
SDK (tests/unit/test_layering.py holds it to that).
"""

from bot.money.amounts import MICROS_PER_USD, from_micros, reported_usd, to_micros, usd

__all__ = ["MICROS_PER_USD", "from_micros", "reported_usd", "to_micros", "usd"]
