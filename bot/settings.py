"""Runtime configuration: one pydantic-settings object, built once at start-up.

Environment names are the product's public contract (each one is described in
docs/operator-guide.md); a `.env` file in the working directory is read too.
Secrets are `SecretStr`, so they print as '**********' in reprs, logs and
tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    database_url: str = "sqlite:///imagine.db"

    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    # Vertex AI. These are passed to the SDK explicitly: pydantic-settings reads `.env` but does
    # not export it, so the SDK's own look-up of the environment would miss them there.
    google_genai_use_vertexai: bool = False
    google_cloud_project: str | None = None
    # Gemini 3.x image models are served only at `global`; a regional endpoint answers 404.
    google_cloud_location: str = "global"
    # A service-account or user credentials file; unset means Application Default Credentials.
    google_application_credentials: Path | None = None

    openai_compat_base_url: str | None = None
    openai_compat_api_key: SecretStr | None = None
    # The gateway's route name: its prices are [gateways.NAME], its limits [routes.NAME].
    openai_compat_route: str = "openrouter"

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    # Where budget alerts go (a channel id); unset means no alerts.
    slack_alert_channel: str | None = None

    discord_token: SecretStr | None = None
    # REST base URL, e.g. http://127.0.0.1:8080/api/v10 (tests); the gateway URL is then read from it.
    discord_api_url: str | None = None
    discord_alert_channel: str | None = None

    port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port, named in the log
    imagine_config: Path | None = None

    # Operational knobs, not part of the public contract but named alike.
    imagine_workers: int = Field(default=4, ge=1, le=256)
    imagine_max_attempts: int = Field(default=3, ge=1, le=20)
    imagine_lease_seconds: float = Field(default=120.0, gt=0)
    # The longest wait before a failed chat delivery (an upload refused by Slack or Discord) is retried.
    imagine_outbox_retry_max: float = Field(default=300.0, gt=0)
    imagine_request_timeout: float = Field(default=180.0, gt=0)
    # A Flex lane call (--relax): Google's target is 1-15 minutes, so it waits longer.
    imagine_flex_timeout: float = Field(default=960.0, gt=0)
    # No retry is scheduled past this many seconds after the request was made.
    imagine_job_deadline: float = Field(default=900.0, gt=0)
    # An identical request within this many seconds gets the stored image at $0; 0 turns it off.
    imagine_cache_ttl: float = Field(default=24 * 3600, ge=0)
    # The relaxed lane: gather waiting jobs this long, at most this many per batch, poll this often.
    imagine_batch_window: float = Field(default=60.0, gt=0)
    imagine_batch_max: int = Field(default=100, ge=1, le=1000)
    imagine_batch_poll: float = Field(default=60.0, gt=0)
    # Users' attachments downloaded at once, by this process and by one user (each up to 14 MB).
    imagine_downloads: int = Field(default=8, ge=1, le=256)
    imagine_user_downloads: int = Field(default=2, ge=1, le=64)
    # Megabytes (MiB) the images in flight may take in one worker process: each job reserves what
    # its model and size can take (the catalog's memory_bytes) before its call, and waits for room.
    imagine_memory_mb: int = Field(default=512, ge=16)
    # How often the worker role lapses the [Ask a moderator] requests unanswered for 24 hours.
    imagine_approval_sweep_seconds: float = Field(default=60.0, gt=0)

    # The web dashboard (adapters/web). Its links' base, e.g. https://imagine.example.com; unset means
    # http://localhost:PORT (fine for an operator on the same machine).
    imagine_public_url: str | None = None
    # Signs sign-in links and session cookies (32+ characters). Unset: no dashboard at all, since a
    # secret made up at start would differ between processes and break every link on restart.
    imagine_web_secret: SecretStr | None = None
    # When set, /metrics answers only a scrape sending `Authorization: Bearer <this>`.
    imagine_metrics_token: SecretStr | None = None
    # How long a dashboard session lasts after signing in.
    imagine_web_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    @field_validator(
        "imagine_public_url",
        "imagine_web_secret",
        "imagine_metrics_token",
        "gemini_api_key",
        "openai_compat_api_key",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "discord_token",
        "google_cloud_project",
        "google_application_credentials",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `GEMINI_API_KEY=` in a .env file means "not configured", not "empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("google_cloud_location", mode="before")
    @classmethod
    def _blank_location_is_global(cls, value: object) -> object:
        return "global" if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("imagine_web_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)")
        return value

    @field_validator("imagine_public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. https://imagine.example.com")
        return value.rstrip("/") if value is not None else None

    @property
    def web_configured(self) -> bool:
        return self.imagine_web_secret is not None

    @property
    def public_url(self) -> str:
        return self.imagine_public_url or f"http://localhost:{self.port}"

    @property
    def gemini_configured(self) -> bool:
        return self.gemini_api_key is not None or self.google_genai_use_vertexai

    @property
    def database_label(self) -> str:
        """DATABASE_URL fit for a log line: no password, no query string."""
        label = self.database_url.split("?")[0]
        password = urlsplit(label).password
        return label.replace(f":{password}@", ":***@", 1) if password else label

    @property
    def batch_lane_available(self) -> bool:
        # Inlined batch requests are a Developer API feature; Vertex batches read from GCS or BigQuery.
        return self.gemini_api_key is not None and not self.google_genai_use_vertexai

    @property
    def service_tiers_available(self) -> bool:
        # Flex and Priority: generateContent's service_tier on the Developer API (Vertex AI sells
        # them as PayGo options of its own).
        return self.gemini_api_key is not None and not self.google_genai_use_vertexai

    @property
    def provider_configured(self) -> bool:
        return self.gemini_configured or self.openai_compat_base_url is not None

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def discord_configured(self) -> bool:
        return self.discord_token is not None
