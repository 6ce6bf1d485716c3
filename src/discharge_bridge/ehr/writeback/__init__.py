"""Write-back: our Flag, RiskAssessment and coordination Tasks kept on the hospital's FHIR server.

Off by default, per source (``Source.writeback``; ehr/writeback/settings.py)::

    discharge-bridge sources set NAME --writeback on [--writeback-resources Flag,RiskAssessment,Task]
    discharge-bridge writeback status [NAME]        # pending / sent / failed, refusals with the EHR's reasons
    discharge-bridge writeback retry NAME           # failed -> pending (audited as writeback.retry)

Keys of ``Source.writeback``: ``enabled``; ``resources`` (default all three); ``create_by``
("conditional", the default, or "id", for all types or per type); and two written by the passes,
``reconciled_at`` and ``tasks_read_at``. The identifier system is the ``writeback_identifier_system``
setting (``DISCHARGE_BRIDGE_WRITEBACK_IDENTIFIER_SYSTEM``, default ``urn:discharge-bridge:writeback``).

The source's client needs, in SMART Backend Services v2 syntax, ``system/Flag.cu
system/RiskAssessment.cu system/Task.cru`` (v1: ``system/Flag.write system/RiskAssessment.write
system/Task.read system/Task.write``), plus the read scopes the poll already uses; Task read is for
statuses changed in the EHR. A 401/403 marks the items failed until the scopes are granted and IT
presses Retry.

When: after each poll pass of the source (scheduler or worker). Modules: ``resources`` (pure shapes),
``outbox`` (reconcile), ``readback`` (Task statuses from the EHR), ``send`` (the HTTP), ``jobs``
(one pass), ``status`` (what IT sees), ``settings``.
"""
