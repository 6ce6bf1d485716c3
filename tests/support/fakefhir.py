"""A tiny in-memory FHIR search endpoint on ``httpx.MockTransport`` for fast pass-logic tests.

It implements just the searches a poll pass makes (with paging whose next links name a foreign
host, as many real servers do). Integration tests use the real EHR simulator instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import orjson

BASE = "http://ehr.test/fhir"
ADVERTISED = "http://localhost:8090/fhir"  # what the server puts in its own links

_T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _ref_id(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return ref["reference"].split("/")[-1]
    return None


class FakeFhir:
    def __init__(self, page_size_cap: int = 1000, honour_sort: bool = True) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.clock = _T0
        self.requests: list[httpx.Request] = []
        self.page_size_cap = page_size_cap
        self.honour_sort = honour_sort
        self.fail: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.before_request: Callable[[httpx.Request], None] | None = None

    # -- writing ---------------------------------------------------------------------------------
    def put(self, resource: dict[str, Any], *, advance: float = 1.0) -> dict[str, Any]:
        self.clock += timedelta(seconds=advance)
        key = (resource["resourceType"], resource["id"])
        previous = self.store.get(key)
        version = int(previous["meta"]["versionId"]) + 1 if previous else 1
        stored = copy.deepcopy(resource)
        stored["meta"] = {"versionId": str(version), "lastUpdated": self.clock.isoformat().replace("+00:00", "Z")}
        self.store[key] = stored
        return stored

    # -- searching -------------------------------------------------------------------------------
    def _matches(self, rtype: str, res: dict[str, Any], params: dict[str, str]) -> bool:
        for name, value in params.items():
            if name.startswith("_") and name not in ("_lastUpdated", "_id"):
                continue
            options = value.split(",")
            if name == "_id" and res["id"] not in options:
                return False
            if name == "_lastUpdated":
                assert value[:2] in ("gt", "ge"), value
                since = datetime.fromisoformat(value[2:].replace("Z", "+00:00"))
                stamp = datetime.fromisoformat(res["meta"]["lastUpdated"].replace("Z", "+00:00"))
                if stamp < since or (stamp == since and value.startswith("gt")):
                    return False
            if name == "class" and (res.get("class") or {}).get("code") not in options:
                return False
            if name == "status" and res.get("status") not in options:
                return False
            if name in ("patient", "subject"):
                field = "patient" if rtype == "RelatedPerson" else "subject"
                if _ref_id(res.get(field)) not in options:
                    return False
            if name == "category":
                codes = {c.get("code") for cat in res.get("category") or [] for c in cat.get("coding") or []}
                if not codes & set(options):
                    return False
        return True

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.before_request is not None:
            self.before_request(request)
        if self.fail is not None and (response := self.fail(request)) is not None:
            return response
        path = request.url.path.removeprefix("/fhir/")
        params = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        if path == "metadata":
            return httpx.Response(200, json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
        if "/" in path:  # a read: Type/id
            rtype, rid = path.split("/", 1)
            found = self.store.get((rtype, rid))
            return httpx.Response(200, json=found) if found else httpx.Response(404)
        rtype = path
        offset = int(params.pop("_offset", "0"))
        count = min(int(params.get("_count", "50")), self.page_size_cap)
        hits = [r for (t, _), r in self.store.items() if t == rtype and self._matches(t, r, params)]
        if params.get("_sort") == "_lastUpdated" and self.honour_sort:
            hits.sort(key=lambda r: r["meta"]["lastUpdated"])
        else:
            hits.sort(key=lambda r: r["id"], reverse=True)
        page = hits[offset : offset + count]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in page]
        if rtype == "Encounter" and params.get("_include") == "Encounter:subject":
            seen = set()
            for r in page:
                pid = _ref_id(r.get("subject"))
                if pid and pid not in seen and ("Patient", pid) in self.store:
                    seen.add(pid)
                    entries.append({"resource": self.store[("Patient", pid)], "search": {"mode": "include"}})
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(hits), "entry": entries}
        if offset + count < len(hits):
            nxt = {**params, "_offset": str(offset + count)}
            bundle["link"] = [{"relation": "next", "url": f"{ADVERTISED}/{rtype}?{urlencode(nxt)}"}]
        return httpx.Response(
            200,
            content=orjson.dumps(bundle),
            headers={"content-type": "application/fhir+json", "date": self.clock.strftime("%a, %d %b %Y %H:%M:%S GMT")},
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def paths(self) -> list[str]:
        return [urlsplit(str(r.url)).path for r in self.requests]


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1940-03-02", **extra}


def encounter(eid: str, pid: str, status: str = "in-progress", cls: str = "IMP", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2026-11-01T09:30:00+03:00"},
        **extra,
    }


def condition(cid: str, pid: str, code: str = "F03.90") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
