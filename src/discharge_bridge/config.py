"""Service settings, read from the environment (prefix ``DISCHARGE_BRIDGE_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_mappings_dir() -> Path:
    # A source checkout keeps mappings/ at the top; an installed wheel has none, so fall back to cwd.
    bundled = PROJECT_ROOT / "mappings"
    return bundled if bundled.is_dir() else Path.cwd() / "mappings"


PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "changethis", "change_me", "secret", "token", "password"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISCHARGE_BRIDGE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Folder for the embedded SQLite database.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; PostgreSQL in production. Default: SQLite in data_dir."
    )
    mappings_dir: Path = Field(default_factory=_default_mappings_dir)
    api_token: SecretStr | None = Field(
        default=None, description="Static bearer token for machine access to the API (until sign-in exists)."
    )
    sync_page_size: int = Field(default=200, ge=1, le=1000)
    sync_overlap_seconds: int = Field(
        default=120, ge=0, description="Re-read this much before the cursor to absorb server clock skew."
    )
    facts_batch_size: int = Field(
        default=100, ge=1, le=500, description="Patients per Condition/... query (URLs stay under ~2 KB)."
    )
    observation_categories: list[str] = Field(
        default=["social-history", "survey", "functional-status", "activity"],
        description="Observation categories fetched for risk flagging.",
    )
    conformance_sample: int = Field(
        default=50,
        ge=0,
        description="Resources per type and sync pass fully validated against the R4B models (0 = none).",
    )
    session_hours: int = Field(default=12, ge=1, le=24 * 30, description="A browser sign-in lasts this long.")
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure. None: when the request came over HTTPS (behind a TLS proxy, "
        "run with --proxy-headers so the scheme is known).",
    )
    morning_worklist_time: str = Field(
        default="07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local time of the morning worklist."
    )
    escalation_interval_minutes: int = Field(default=15, ge=1, description="How often overdue tasks are escalated.")
    rescore_check_seconds: int = Field(default=60, ge=5, description="How often rule / mapping changes are looked for.")
    scheduler_heartbeat_seconds: int = Field(default=15, ge=1)
    scheduler_stale_seconds: int = Field(
        default=120, ge=5, description="/readyz fails when the scheduler's last heartbeat is older than this."
    )
    log_level: str = "INFO"
    assessment_batch_size: int = Field(
        default=500, ge=1, le=5000, description="Queued patients assessed per transaction by the assessment stage."
    )
    scoring_processes: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Extra processes that score shares of each assessment batch on other cores "
        "(assessment/pool.py); 0 scores in the draining process alone.",
    )
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest webhook notification accepted (413 beyond, counted while the body streams). "
        "Notifications are a few KB, full-resource ones rarely more than tens.",
    )
    assessment_interval_seconds: int = Field(
        default=10, ge=1, description="How often the scheduler drains what is left in the assessment queue."
    )
    list_figures_max_age_seconds: float = Field(
        default=0,
        ge=0,
        le=300,
        description="Keep the worklist filters' counts, the bed board's totals and the board's order this "
        "long per web process (0: compute them on every request). At city scale they are aggregates and a sort "
        "over every open admission; the rows of a page are always read live.",
    )
    # Workers that share the sources (scheduling/workers.py, `discharge-bridge worker`).
    poll_by: Literal["scheduler", "workers"] = Field(
        default="scheduler",
        description="Who polls the sources: the scheduler leader (one process), or `discharge-bridge worker` "
        "processes that lease them (the leader then skips its poll jobs).",
    )
    worker_lease_seconds: int = Field(
        default=60, ge=1, description="A worker's hold on a source; renewed while a pass runs, taken over once expired."
    )
    worker_tick_seconds: float = Field(default=5.0, gt=0, description="How often an idle worker looks for due sources.")
    worker_concurrency: int = Field(default=1, ge=1, le=64, description="Sources one worker process polls at once.")
    # Passwords and sign-in (users/passwords.py, users/throttle.py).
    password_min_length: int = Field(default=12, ge=8, le=128, description="Shortest password accepted.")
    signin_free_failures: int = Field(
        default=3, ge=1, description="Failed sign-ins in a row (per account or address) answered without a wait."
    )
    signin_delay_seconds: int = Field(
        default=2, ge=1, description="The wait after the next failure; it doubles with each further one."
    )
    signin_max_delay_seconds: int = Field(default=60, ge=1, description="The longest wait before a lock.")
    signin_lock_failures: int = Field(
        default=10, ge=2, description="Failed sign-ins in a row that lock an account for signin_lock_minutes."
    )
    signin_address_free_failures: int = Field(
        default=20, ge=1, description="As signin_free_failures, per client address (many people share a NAT)."
    )
    signin_address_lock_failures: int = Field(
        default=100, ge=2, description="Failed sign-ins in a row from one client address that lock it."
    )
    signin_lock_minutes: int = Field(default=15, ge=1, description="How long a lock lasts (an admin may lift it).")
    signin_reset_minutes: int = Field(
        default=15, ge=1, description="Failures are forgotten this long after the last one (or after a lock ends)."
    )

    # Write-back to the EHR (ehr/writeback/): the system of our identifier on the Flags, RiskAssessments and
    # Tasks we write. Set it once, before the first write: a new system makes the next writes new resources.
    writeback_identifier_system: str = Field(
        default="urn:discharge-bridge:writeback",
        min_length=4,
        description="Identifier.system of what write-back keeps on the EHR (e.g. https://bridge.example/fhir/sid).",
    )

    # The address EHRs reach this service at, behind any proxy (scheme://host[:port][/prefix]): the `aud` a
    # CDS Hooks JWT must carry and the base of the links in its cards (ehr/cds/). None: the request's own URL.
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="External base URL of this service, e.g. https://bridge.hospital.example (no trailing path "
        "needed): what EHRs call. Needed behind a proxy that rewrites the host or the scheme.",
    )

    # Where a source may point (sources/safety.py).
    allow_plain_http: bool = Field(
        default=False,
        description="Let a source use plain http:// to another host than this one. Off: HTTPS, except to loopback.",
    )
    allowed_source_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names or addresses (comma-separated) a source may use whatever their port, scheme or "
        "address: the operator vouches for them.",
    )
    import_roots: Annotated[list[Path], NoDecode] | None = Field(
        default=None,
        description="Folders (comma-separated) a file source's folder must lie under. "
        "Default: the data folder's imports/ and the bundled fhir_fixtures/.",
    )

    @field_validator("api_token")
    @classmethod
    def _not_a_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        """The example files' placeholder left in place would be a password everyone knows."""
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "is a placeholder from an example file; set a long random token "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if value is not None and not value.get_secret_value().strip():
            return None  # an empty variable means no static token, not an empty password
        return value

    @field_validator("allowed_source_hosts", "import_roots", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the URLs people paste from psql docs; we drive PostgreSQL through psycopg 3.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'discharge_bridge.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
