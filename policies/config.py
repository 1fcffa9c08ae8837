"""Per-team policy settings: defaults from `[policy]`, overrides from `[teams."T"]`.

Both tables live in the IMAGINE_CONFIG TOML file, beside the prices:

    [policy]
    user_images_per_day = 50
    over_soft_threshold = "downgrade"     # or "confirm"
    default_team_budget_usd = 20          # monthly cap of a team with no budget of its own

    [access]
    teams = ["T0123", "112233445566"]     # only these Slack teams / Discord guilds

    [teams."T0123"]
    moderators = ["U042"]
    banned_terms = ["gore"]
    privacy_mode = true
    fallback = { pro = ["flash"] }
    priority = true                       # may use --priority (dearer, never shed)
    hedge_after_s = 20                    # also ask flash when pro is slower than this
    stale_cache_fallback = false          # when every route is down, fail rather than serve an earlier image
    [teams."T0123".channels."C0DESIGN"]
    models = ["pro", "flash"]
    sizes = ["1K", "2K", "4K"]
    [teams."T0123".roles."S0INTERNS"]      # a Slack user group id, or a Discord role id
    user_daily_usd = 5
    user_images_per_day = 20
    models = ["flash"]
    sizes = ["1K", "2K"]
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ChannelRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str] | None = None  # aliases allowed here; None = any
    sizes: list[str] | None = None


class RoleRule(BaseModel):
    """Per-user limits for the members of one platform role (policies/roles.py combines them);
    a limit left out says nothing, so another role's, or the team's own, applies."""

    model_config = ConfigDict(extra="forbid")
    user_daily_usd: Decimal | None = Field(default=None, ge=0, le=1_000_000)
    user_images_per_day: int | None = Field(default=None, ge=0)
    models: list[str] | None = None  # model aliases, as channels name them
    sizes: list[str] | None = None


class TeamPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_images_per_day: int | None = Field(default=100, ge=0)
    user_concurrent_jobs: int | None = Field(default=4, ge=0)
    team_queued_jobs: int | None = Field(default=100, ge=0)
    max_prompt_chars: int = Field(default=2000, ge=1)
    banned_terms: list[str] = Field(default_factory=list)
    # Refused prompts are recorded without their text.
    privacy_mode: bool = False
    # Past a budget's soft threshold: switch Pro to Flash, or ask first.
    over_soft_threshold: Literal["downgrade", "confirm"] = "confirm"
    # Any single request estimated above this needs confirmation.
    confirm_above_usd: Decimal | None = Field(default=Decimal("0.50"), ge=0)
    soft_threshold: Decimal = Field(default=Decimal("0.8"), gt=0, le=1)
    # A monthly budget for a team that has not set one: nobody who adds the bot
    # can spend without limit. 0 means nothing runs until a moderator sets one.
    default_team_budget_usd: Decimal = Field(default=Decimal(20), ge=0, le=1_000_000)
    moderators: list[str] = Field(default_factory=list)
    channels: dict[str, ChannelRule] = Field(default_factory=dict)
    # Keyed by a Discord role id or a Slack user group id, as the platform says them.
    roles: dict[str, RoleRule] = Field(default_factory=dict)
    # When a model's route is overloaded or rate-limited, try these instead, in
    # order: {"pro": ["flash"]}, or a gateway route: {"pro": ["openrouter:pro", "flash"]}.
    fallback: dict[str, list[str]] = Field(default_factory=dict)
    # The Priority lane (--priority): never shed, at the catalog's priority_multiplier.
    priority: bool = False
    # When every route is down, answer with the team's own earlier image for the
    # identical request (however old), at $0, marked as such, rather than failing.
    stale_cache_fallback: bool = True
    # Off (None) by default: when the primary route has not answered after this many
    # seconds, also ask the next route in the fallback chain; the first image wins and
    # both calls are paid for (the hold covers both).
    hedge_after_s: float | None = Field(default=None, gt=0, le=600)
    # A budget refusal offers [Ask a moderator]: a moderator may approve one image over the budget.
    approvals: bool = True


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Slack team ids and Discord guild ids the bot serves; None serves every team.
    teams: list[str] | None = None


class PolicyBook:
    """Looks up the policy of a team: its overrides merged over the defaults."""

    def __init__(
        self,
        defaults: dict[str, Any] | None = None,
        teams: dict[str, dict[str, Any]] | None = None,
        access: dict[str, Any] | None = None,
    ):
        try:
            self._defaults = TeamPolicy(**(defaults or {}))
            self._teams = {
                team: TeamPolicy(**{**(defaults or {}), **overrides}) for team, overrides in (teams or {}).items()
            }
            self.access = Access(**(access or {}))
        except ValidationError as exc:
            raise ValueError(f"invalid policy in IMAGINE_CONFIG: {exc}") from exc

    def for_team(self, team: str) -> TeamPolicy:
        return self._teams.get(team, self._defaults)

    def teams(self) -> dict[str, TeamPolicy]:
        """Every policy in force: the defaults (key "") and each team's own."""
        return {"": self._defaults, **self._teams}

    def allows(self, team: str) -> bool:
        """Whether the [access] allow-list lets this team use the bot."""
        return self.access.teams is None or team in self.access.teams

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PolicyBook:
        """From the parsed IMAGINE_CONFIG file: its [policy], [teams] and [access] tables."""
        return cls(config.get("policy"), config.get("teams"), config.get("access"))
