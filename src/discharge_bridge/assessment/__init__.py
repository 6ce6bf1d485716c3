"""The assessment stage: above ingest, it drains the queue of changed patients into risk and cases.

``drain`` works the queue in batches, each in its own transaction that also deletes the entries it
assessed; ``sync_and_assess`` is a pass followed by a drain, what every caller of a sync wants.
"""

from discharge_bridge.assessment.jobs import assess_source, sync_and_assess
from discharge_bridge.assessment.stage import AssessmentStats, drain

__all__ = ["AssessmentStats", "assess_source", "drain", "sync_and_assess"]
