"""Re-scoring after a rule or mapping change, detected by a fingerprint of the files as loaded.

The fingerprint is the sha256 of the rule set file and the source's mapping file with every file it
``extends`` (risk/service.py ``ScoringContext.digest``). It is stored on ``Source.scoring_fingerprint``
after a full re-score; a different one (or none yet) means the stored assessments may be stale.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from discharge_bridge.cases.jobs import FollowUp, assess_and_follow
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.risk.service import scoring_context
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import get_source

log = logging.getLogger(__name__)


def scoring_fingerprint(source: Source, settings: Settings) -> str:
    """Raises MappingError / RuleSetError when a file is broken."""
    return scoring_context(source, settings).digest


def rescore_source(engine: Engine, name: str, settings: Settings, *, force: bool = True) -> FollowUp:
    """Re-assess every current admission of the source, then store the fingerprint it was scored with.

    The fingerprint is taken before scoring: a file changed meanwhile leaves a stale fingerprint
    behind, so the next check scores again rather than missing the change.
    """
    with session_scope(engine) as session:
        fingerprint = scoring_fingerprint(get_source(session, name), settings)
    follow = assess_and_follow(engine, name, settings, force=force)
    with session_scope(engine) as session:
        get_source(session, name).scoring_fingerprint = fingerprint
    return follow


def rescore_if_changed(engine: Engine, name: str, settings: Settings) -> FollowUp | None:
    """A full re-score when the source's rules or mapping changed since it was last fully scored."""
    with session_scope(engine) as session:
        source = get_source(session, name)
        stored, current = source.scoring_fingerprint, scoring_fingerprint(source, settings)
    if stored == current:
        return None
    log.info("source %s: rules or mapping changed; re-scoring every current admission", name)
    return rescore_source(engine, name, settings, force=True)
