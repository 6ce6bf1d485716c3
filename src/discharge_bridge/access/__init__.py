"""Who looked at whom: every view of a patient's identity, for the privacy officer.

A page or API response that shows a name, an MRN, a phone, an address, a birth date or a
relative's details calls ``record_view`` once per request with the patients it showed; an admin
searches the log and exports it as CSV. The log holds ids only, never the identity itself.
"""

from discharge_bridge.access.service import AccessQuery, AccessRow, iter_access, record_view, search_access, write_csv

__all__ = ["AccessQuery", "AccessRow", "iter_access", "record_view", "search_access", "write_csv"]
