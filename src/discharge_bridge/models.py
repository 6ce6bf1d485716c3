"""Every table, imported in one place so Alembic and ``SQLModel.metadata`` see the whole schema."""

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.audit.models import AdminAuditEntry
from discharge_bridge.cases.consent.models import Consent
from discharge_bridge.cases.contacts.models import CaseContact, ContactLogEntry
from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.handoffs.models import Handoff
from discharge_bridge.cases.models import Assessment, Barrier, Case, CaseEvent
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.cases.screening.models import ScreeningResponse
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.directory.models import DirectoryService, Organisation
from discharge_bridge.ehr.models import CdsTokenSeen, SmartLaunchState, WritebackItem
from discharge_bridge.ingest.models import (
    BulkExport,
    ClinicalSnapshot,
    ConformanceIssue,
    DeadLetter,
    EncounterSnapshot,
    PatientSnapshot,
)
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.scheduling.models import SchedulerLease, SourceLease
from discharge_bridge.sources.models import Source, SyncRun
from discharge_bridge.subscriptions.models import SourceSubscription, WebhookNotification
from discharge_bridge.users.models import ApiToken, SigninThrottle, User, UserFhirIdentity, UserSource, WebSession
from discharge_bridge.worklists.models import MorningList

__all__ = [
    "AccessLogEntry",
    "AccessLogPatient",
    "AdminAuditEntry",
    "ApiToken",
    "Assessment",
    "Barrier",
    "BulkExport",
    "Case",
    "CaseContact",
    "CaseEvent",
    "CdsTokenSeen",
    "ClinicalSnapshot",
    "ConformanceIssue",
    "Consent",
    "ContactLogEntry",
    "DeadLetter",
    "DirectoryService",
    "EncounterSnapshot",
    "Handoff",
    "MorningList",
    "Organisation",
    "PatientSnapshot",
    "Referral",
    "RiskAssessment",
    "SchedulerLease",
    "ScreeningResponse",
    "ServiceDelivered",
    "SigninThrottle",
    "SmartLaunchState",
    "Source",
    "SourceLease",
    "SourceSubscription",
    "SyncRun",
    "Task",
    "User",
    "UserFhirIdentity",
    "UserSource",
    "WebSession",
    "WebhookNotification",
    "WritebackItem",
]
