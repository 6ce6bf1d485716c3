"""Relatives, guardians and other contacts of a case's patient, and the log of calls and visits.

``service`` lists contacts (from the EHR and added by hand), adds and edits them, and records log
entries; ``plan`` says what an outcome does to the action plan. The tables are in ``models``.
"""
