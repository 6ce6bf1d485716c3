"""A minimal FHIR R4 search server on loopback, run in its own process so its CPU is not the client's.

Answers exactly the searches a poll pass makes, from in-memory indexes of pre-serialised entries:
``Encounter?class=..&_include=Encounter:subject&_sort=_lastUpdated&_count=..[&_lastUpdated=gt..]``,
``{Condition,Observation,RelatedPerson,Encounter}?patient=a,b,..`` (``subject=`` too),
``Observation?category=..``, ``Patient?_id=..`` and ``[type]?_lastUpdated=gt..``. Next links name a
foreign host (``http://localhost:8090/fhir``) the way HAPI behind a proxy does; the client must pin
them to the address it was configured with.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from tests.support.synthetic import Item, generate

ADVERTISED = "http://localhost:8090/fhir"


class _Hit:
    __slots__ = ("categories", "cls", "entry", "patient", "stamp", "status")

    def __init__(self, item: Item, entry: bytes) -> None:
        self.stamp = item.stamp
        self.status = item.resource.get("status")
        self.patient = item.patient
        self.cls = item.cls
        self.categories = item.categories
        self.entry = entry


def _entry(res: dict[str, Any], body: bytes, mode: str) -> bytes:
    full_url = f'"{ADVERTISED}/{res["resourceType"]}/{res["id"]}"'.encode()
    return b'{"fullUrl":' + full_url + b',"resource":' + body + b',"search":{"mode":"' + mode.encode() + b'"}}'


class Index:
    def __init__(self, items: list[Item]) -> None:
        self.by_type: dict[str, list[_Hit]] = defaultdict(list)  # lastUpdated order
        self.by_patient: dict[tuple[str, str], list[_Hit]] = defaultdict(list)
        self.by_id: dict[tuple[str, str], _Hit] = {}
        self.include: dict[str, bytes] = {}
        for item in sorted(items, key=lambda i: i.stamp):
            res = item.resource
            rtype, rid = res["resourceType"], res["id"]
            body = orjson.dumps(res)
            hit = _Hit(item, _entry(res, body, "match"))
            self.by_type[rtype].append(hit)
            self.by_id[(rtype, rid)] = hit
            if item.patient is not None and rtype != "Patient":
                self.by_patient[(rtype, item.patient)].append(hit)
            if rtype == "Patient":
                self.include[rid] = _entry(res, body, "include")
        self.stamps = {t: [h.stamp for h in hits] for t, hits in self.by_type.items()}
        self._cache: OrderedDict[tuple[Any, ...], list[_Hit]] = OrderedDict()
        self._lock = threading.Lock()
        self._views: dict[tuple[str, str | None, str | None], tuple[list[_Hit], list[str]]] = {}

    def hits(self, rtype: str, params: dict[str, str]) -> list[_Hit]:
        """Every match of a search (before paging); the last few searches are remembered for paging."""
        key = (rtype, tuple(sorted((k, v) for k, v in params.items() if k not in ("_offset", "_count"))))
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        found = self._search(rtype, params)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return found

    def _view(self, rtype: str, cls: str | None, category: str | None) -> tuple[list[_Hit], list[str]]:
        """A type's resources in lastUpdated order, filtered by class / category, with their stamps."""
        key = (rtype, cls, category)
        found = self._views.get(key)
        if found is None:
            hits = self.by_type.get(rtype, [])
            if cls is not None:
                wanted = set(cls.split(","))
                hits = [h for h in hits if h.cls in wanted]
            if category is not None:
                wanted = set(category.split(","))
                hits = [h for h in hits if h.categories & wanted]
            found = self._views[key] = (hits, [h.stamp for h in hits])
        return found

    def _search(self, rtype: str, params: dict[str, str]) -> list[_Hit]:
        since = params.get("_lastUpdated")
        if since is not None:
            assert since[:2] in ("gt", "ge"), since  # stamps and bounds share one text format
        if "_id" in params or "patient" in params or "subject" in params:
            if "_id" in params:
                hits = [h for i in params["_id"].split(",") if (h := self.by_id.get((rtype, i))) is not None]
            else:
                pids = (params.get("patient") or params["subject"]).split(",")
                hits = [h for pid in pids for h in self.by_patient.get((rtype, pid.removeprefix("Patient/")), ())]
            if since is not None:
                hits = [h for h in hits if h.stamp > since[2:] or (since[:2] == "ge" and h.stamp == since[2:])]
            if "class" in params:
                wanted = set(params["class"].split(","))
                hits = [h for h in hits if h.cls in wanted]
            if "category" in params:
                wanted = set(params["category"].split(","))
                hits = [h for h in hits if h.categories & wanted]
            if "status" in params:
                wanted = set(params["status"].split(","))
                hits = [h for h in hits if h.status in wanted]
            if params.get("_sort") == "_lastUpdated":
                hits = sorted(hits, key=lambda h: h.stamp)
            return hits
        hits, stamps = self._view(rtype, params.get("class"), params.get("category"))
        if since is not None:
            cut = bisect.bisect_right if since[:2] == "gt" else bisect.bisect_left
            hits = hits[cut(stamps, since[2:]) :]
        return hits

    def page(self, rtype: str, params: dict[str, str]) -> bytes:
        hits = self.hits(rtype, params)
        offset = int(params.get("_offset", "0"))
        count = int(params.get("_count", "50"))
        page = hits[offset : offset + count]
        entries = [h.entry for h in page]
        if rtype == "Encounter" and params.get("_include") == "Encounter:subject":
            seen: set[str] = set()
            for h in page:
                if h.patient and h.patient not in seen and h.patient in self.include:
                    seen.add(h.patient)
                    entries.append(self.include[h.patient])
        links = [{"relation": "self", "url": f"{ADVERTISED}/{rtype}?{urlencode(params)}"}]
        if offset + count < len(hits):
            nxt = {**params, "_offset": str(offset + count)}
            links.append({"relation": "next", "url": f"{ADVERTISED}/{rtype}?{urlencode(nxt)}"})
        head = b'{"resourceType":"Bundle","type":"searchset","total":%d,"link":' % len(hits)
        return head + orjson.dumps(links) + b',"entry":[' + b",".join(entries) + b"]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client pools connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    index: Index
    served = 0

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/fhir/")
        params = dict(parse_qsl(parts.query))
        if path == "metadata":
            body = orjson.dumps({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "status": "active"})
        elif path in self.index.by_type or path[:1].isupper():
            body = self.index.page(path, params)
        else:
            self.send_error(404)
            return
        type(self).served += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(n_resources: int, seed: int, conn: Any) -> None:
    """Process entry point: build the hospital, listen on a free loopback port, report it on ``conn``."""
    gen = generate(n_resources, seed)
    counts: dict[str, int] = defaultdict(int)
    for item in gen.items:
        counts[item.resource["resourceType"]] += 1
    _Handler.index = Index(gen.items)
    del gen.items  # the index holds the bytes; the dicts are no longer needed
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    conn.send(
        {"port": httpd.server_address[1], "resources": sum(counts.values()), "by_type": dict(counts), "bad": gen.bad}
    )
    httpd.serve_forever(poll_interval=0.5)
