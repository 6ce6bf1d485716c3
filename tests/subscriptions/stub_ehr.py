"""FakeFhir plus what push and backfill need of an EHR: Subscription CRUD with `$status`, and `$export`.

Runs on ``httpx.MockTransport``; faults (429s, failed jobs, errors) are injected per test. The
real EHR simulator covers the same ground in the slow tests.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson

from tests.support.fakefhir import BASE, FakeFhir, _ref_id

EXPORT_FILE_HOST = "http://ehr.test/fhir"


class StubEhr(FakeFhir):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.events_since: dict[str, int] = {}
        self.exports: dict[str, dict[str, Any]] = {}
        self.polls_before_ready = 1
        self.lines_per_file: int | None = None  # split each type's NDJSON into files of this many lines
        self.status_faults: list[httpx.Response] = []  # answered (in order) before the real status
        self.kickoff_faults: list[httpx.Response] = []
        self.on_export: Callable[[dict[str, Any]], None] | None = None
        self._ids = itertools.count(1)

    # -- routing --------------------------------------------------------------------------------
    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir/")
        if self.fail is not None and (response := self.fail(request)) is not None:
            self.requests.append(request)
            return response
        if path.startswith("Subscription"):
            self.requests.append(request)
            return self._subscription(request, path)
        if path.endswith("$export"):
            self.requests.append(request)
            return self._kick_off(request, path)
        if path.startswith("bulk-status/"):
            self.requests.append(request)
            return self._status(path.split("/", 1)[1])
        if path.startswith("bulk-files/"):
            self.requests.append(request)
            return self._file(path.split("/", 1)[1])
        return super().handler(request)

    # -- Subscriptions --------------------------------------------------------------------------
    def _subscription(self, request: httpx.Request, path: str) -> httpx.Response:
        parts = path.split("/")
        if request.method == "POST" and len(parts) == 1:
            body = orjson.loads(request.content)
            sid = f"sub{next(self._ids)}"
            body["id"], body["status"] = sid, "active"
            self.subscriptions[sid] = body
            self.events_since.setdefault(sid, 0)
            return httpx.Response(201, json=body, headers={"Location": f"{BASE}/Subscription/{sid}/_history/1"})
        sid = parts[1] if len(parts) > 1 else ""
        if sid not in self.subscriptions:
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": [{"code": "not-found"}]})
        if len(parts) == 3 and parts[2] == "$status":
            params = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "subscription", "valueReference": {"reference": f"{BASE}/Subscription/{sid}"}},
                    {"name": "status", "valueCode": self.subscriptions[sid]["status"]},
                    {"name": "type", "valueCode": "query-status"},
                    {"name": "events-since-subscription-start", "valueString": str(self.events_since[sid])},
                ],
            }
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": params}]}
            )
        if request.method == "GET":
            return httpx.Response(200, json=self.subscriptions[sid])
        if request.method == "PUT":
            body = orjson.loads(request.content)
            body["status"] = "active"
            self.subscriptions[sid] = body
            return httpx.Response(200, json=body)
        if request.method == "DELETE":
            del self.subscriptions[sid]
            return httpx.Response(204)
        return httpx.Response(405)

    # -- $export --------------------------------------------------------------------------------
    def _kick_off(self, request: httpx.Request, path: str) -> httpx.Response:
        if self.kickoff_faults:
            return self.kickoff_faults.pop(0)
        if "respond-async" not in request.headers.get("prefer", ""):
            return httpx.Response(400)
        params = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        types = params.get("_type", "").split(",") if params.get("_type") else None
        since = params.get("_since")
        members: set[str] | None = None
        if path.startswith("Group/"):
            group = self.store.get(("Group", path.split("/")[1]))
            if group is None:
                return httpx.Response(404)
            members = {m["entity"]["reference"].split("/")[-1] for m in group.get("member", [])}
        by_type: dict[str, list[dict[str, Any]]] = {}
        for (rtype, _), res in sorted(self.store.items()):
            if types is not None and rtype not in types:
                continue
            if since and res["meta"]["lastUpdated"] < since:
                continue
            owner = (
                res["id"]
                if rtype == "Patient"
                else _ref_id(res.get("patient" if rtype == "RelatedPerson" else "subject"))
            )
            if members is not None and owner not in members:
                continue
            by_type.setdefault(rtype, []).append(copy.deepcopy(res))
        job = str(next(self._ids))
        export = {"types": types, "since": since, "by_type": by_type, "polls": 0, "at": self.clock, "group": members}
        self.exports[job] = export
        if self.on_export:
            self.on_export(export)
        return httpx.Response(202, headers={"Content-Location": f"http://localhost:8090/fhir/bulk-status/{job}"})

    def _status(self, job: str) -> httpx.Response:
        if self.status_faults:
            return self.status_faults.pop(0)
        export = self.exports.get(job)
        if export is None:
            return httpx.Response(404)
        export["polls"] += 1
        if export["polls"] <= self.polls_before_ready:
            return httpx.Response(202, headers={"X-Progress": f"{export['polls'] * 40}%", "Retry-After": "2"})
        output = []
        for rtype, resources in export["by_type"].items():
            size = self.lines_per_file or max(len(resources), 1)
            for n, start in enumerate(range(0, len(resources), size)):
                name = f"{rtype}-{n}.ndjson"
                export.setdefault("files", {})[name] = resources[start : start + size]
                output.append(
                    {
                        "type": rtype,
                        "url": f"{EXPORT_FILE_HOST}/bulk-files/{job}/{name}",
                        "count": len(resources[start : start + size]),
                    }
                )
        manifest = {
            "transactionTime": export["at"].isoformat().replace("+00:00", "Z"),
            "request": f"{BASE}/Patient/$export",
            "requiresAccessToken": True,
            "output": output,
            "error": [],
        }
        return httpx.Response(200, json=manifest)

    def _file(self, rest: str) -> httpx.Response:
        job, name = rest.split("/", 1)
        export = self.exports.get(job)
        if export is None or name not in export.get("files", {}):
            return httpx.Response(404)
        body = b"".join(orjson.dumps(r) + b"\n" for r in export["files"][name])
        return httpx.Response(200, content=body, headers={"content-type": "application/fhir+ndjson"})
