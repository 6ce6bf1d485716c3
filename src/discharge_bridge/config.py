"""Service settings, read from the environment (prefix ``DISCHARGE_BRIDGE_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_mappings_dir() -> Path:
    # A source checkout keeps mappings/ at the top; an installed wheel has none, so fall back to cwd.
    bundled = PROJECT_ROOT / "mappings"
    return bundled if bundled.is_dir() else Path.cwd() / "mappings"


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
    log_level: str = "INFO"

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
