"""Where a source may point (issue 16): no credentials in the URL, HTTPS unless loopback, no cloud
metadata or link-local address (by any name that resolves there), web ports only, folders under an
import root; the same rules when a source is added or changed, and again for a stored source before
each sync and at each connection.

Name resolution is faked (``socket.getaddrinfo``): these tests never ask a real DNS server.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge.config import PROJECT_ROOT, Settings, get_settings
from discharge_bridge.connections.service import add_source, update_source
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import BulkExportClient, ExportFile, FhirClient, RetryPolicy
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.safety import (
    SourcePolicy,
    SourceRefused,
    UnsafeSource,
    check_folder,
    check_url,
    guarded_transport,
    masked_url,
    vetted_client,
)
from discharge_bridge.sources.service import SourceError, client_for, get_source

sqlite_only = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # the rules are not SQL
SETTINGS_ENV = (
    "DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS",
    "DISCHARGE_BRIDGE_ALLOW_PLAIN_HTTP",
    "DISCHARGE_BRIDGE_IMPORT_ROOTS",
)


def resolving(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Make ``socket.getaddrinfo`` answer ``names`` (any other name does not exist); returns the names asked."""
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        asked.append(name)
        if name not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        found = []
        for address in names[name]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            where = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
            found.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", where))
        return found

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def policy(tmp_path: Path) -> SourcePolicy:
    (tmp_path / "imports").mkdir()
    return SourcePolicy(import_roots=(tmp_path / "imports",))


def _refusal(url: str, policy: SourcePolicy) -> str:
    with pytest.raises(UnsafeSource) as err:
        check_url(url, policy)
    return str(err.value)


# -- base URLs -------------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    "url", ["https://svc:hunter2@ehr.city.example/fhir", "https://svc@ehr.city.example/fhir", "https://:hunter2@ehr/f"]
)
def test_credentials_in_the_url_are_refused_pointing_to_the_auth_settings(
    url: str, policy: SourcePolicy, engine: Engine
) -> None:
    message = _refusal(url, policy)
    assert "--auth basic" in message and "hunter2" not in message and "svc" not in message
    with session_scope(engine) as session, pytest.raises(UnsafeSource) as err:
        add_source(session, name="city", hospital="City", base_url=url, policy=policy)
    assert err.value.field == "base_url" and "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://169.254.169.254/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("https://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("https://100.100.100.200/latest/meta-data/", "cloud metadata"),
        ("https://169.254.10.1:8443/fhir", "link-local"),
        ("https://[fe80::1]/fhir", "link-local"),
        ("https://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("https://0.0.0.0/fhir", "not the address of a server"),
        ("https://2852039166/", "cloud metadata"),  # 169.254.169.254 as one number: it resolves there
    ],
)
def test_cloud_metadata_and_link_local_addresses_are_refused(
    url: str, words: str, policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolving(monkeypatch, {"2852039166": ["169.254.169.254"]})
    assert words in _refusal(url, policy)


def test_a_name_is_refused_when_any_address_it_resolves_to_is_refused(
    policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = resolving(
        monkeypatch,
        {
            "ehr.city.example": ["10.20.0.5"],
            "sneaky.example": ["10.20.0.5", "169.254.169.254"],
            "linklocal.example": ["fe80::3"],
        },
    )
    check_url("https://ehr.city.example/fhir/r4", policy)  # a hospital's own network: fine
    assert "sneaky.example is at 169.254.169.254" in _refusal("https://sneaky.example/fhir", policy)
    assert "link-local" in _refusal("https://linklocal.example:8443/fhir", policy)
    assert asked == ["ehr.city.example", "sneaky.example", "linklocal.example"]


def test_a_name_that_does_not_resolve_now_is_accepted_and_checked_at_each_connection(
    policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolving(monkeypatch, {})
    check_url("https://ehr.later.example/fhir", policy)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:22/", False),
        ("http://[::1]:6379/", False),
        ("https://ehr.city.example:5432/fhir", False),
        ("https://ehr.city.example:25/fhir", False),
        ("https://ehr.city.example:11211/fhir", False),
        ("https://ehr.city.example:27017/fhir", False),
        ("https://ehr.city.example:1023/fhir", False),
        ("https://ehr.city.example/fhir", True),
        ("https://ehr.city.example:443/fhir", True),
        ("https://ehr.city.example:8443/fhir", True),
        ("https://ehr.city.example:8080/fhir", True),
        ("https://ehr.city.example:9443/fhir", True),
        ("http://127.0.0.1:8080/fhir", True),
        ("http://127.0.0.1:49152/fhir", True),  # the tests' simulator: loopback, a random high port
        ("http://localhost:50001/fhir", True),
    ],
)
def test_only_web_ports(url: str, allowed: bool, policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    resolving(monkeypatch, {"ehr.city.example": ["10.20.0.5"], "localhost": ["127.0.0.1", "::1"]})
    if allowed:
        check_url(url, policy)
    else:
        assert "is not a web port" in _refusal(url, policy)


def test_plain_http_only_to_this_host_unless_a_setting_allows_it(
    policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolving(monkeypatch, {"ehr.city.example": ["10.20.0.5"], "localhost": ["127.0.0.1"]})
    message = _refusal("http://ehr.city.example/fhir", policy)
    assert "https://" in message and "DISCHARGE_BRIDGE_ALLOW_PLAIN_HTTP" in message
    assert "plain http" in _refusal("http://10.20.0.5:8080/fhir", policy)
    check_url("http://127.0.0.1:8080/fhir", policy)
    check_url("http://localhost:8080/fhir", policy)
    check_url("http://[::1]:8080/fhir", policy)
    lenient = SourcePolicy(allow_plain_http=True)
    check_url("http://ehr.city.example/fhir", lenient)
    assert "cloud metadata" in _refusal("http://169.254.169.254/", lenient)  # only the scheme is let through


def test_a_host_named_in_the_setting_skips_the_checks(policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = resolving(monkeypatch, {"ehr.lab.example": ["169.254.7.7"]})
    named = SourcePolicy(allowed_hosts=frozenset({"ehr.lab.example", "10.9.9.9"}))
    check_url("http://ehr.lab.example:2222/fhir", named)
    check_url("http://10.9.9.9:22/fhir", named)
    assert asked == []  # not even resolved
    with pytest.raises(UnsafeSource):
        check_url("https://user:pw@ehr.lab.example/fhir", named)  # credentials never belong in a URL


def test_the_settings_read_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS", "EHR.Lab.example, 10.9.9.9")
    monkeypatch.setenv("DISCHARGE_BRIDGE_ALLOW_PLAIN_HTTP", "true")
    monkeypatch.setenv("DISCHARGE_BRIDGE_IMPORT_ROOTS", f"{tmp_path / 'a'},{tmp_path / 'b'}")
    read = SourcePolicy.of(Settings(data_dir=tmp_path / "data"))
    assert read.allowed_hosts == frozenset({"ehr.lab.example", "10.9.9.9"}) and read.allow_plain_http
    assert read.import_roots == (tmp_path / "a", tmp_path / "b")
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name)
    default = SourcePolicy.of(Settings(data_dir=tmp_path / "data"))
    assert default == SourcePolicy(
        allow_plain_http=False,
        allowed_hosts=frozenset(),
        import_roots=(tmp_path / "data" / "imports", PROJECT_ROOT / "fhir_fixtures"),
    )


# -- folders ---------------------------------------------------------------------------------------------


def test_a_folder_must_lie_under_an_import_root(policy: SourcePolicy, tmp_path: Path) -> None:
    root = tmp_path / "imports"
    (root / "city").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "Patient.ndjson").write_text("{}\n")
    assert check_folder(str(root / "city"), policy) == root / "city"
    assert check_folder(str(root / "city" / ".." / "city" / "."), policy) == root / "city"
    for folder in ("/etc", str(root / ".." / "outside"), str(root / "city" / ".." / ".." / "outside")):
        with pytest.raises(UnsafeSource, match="outside the folders file sources may read"):
            check_folder(folder, policy)
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeSource, match="outside the folders file sources may read"):
        check_folder(str(root / "link"), policy)
    (root / "city" / "Encounter.ndjson").symlink_to(tmp_path / "outside" / "Patient.ndjson")
    with pytest.raises(UnsafeSource, match=r"links to .* outside the folders"):
        check_folder(str(root / "city"), policy)


def test_the_demo_hospital_is_under_the_default_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    default = SourcePolicy.of(Settings(data_dir=tmp_path / "data"))
    demo = PROJECT_ROOT / "fhir_fixtures" / "demo-hospital"
    assert check_folder(str(demo), default) == demo


@sqlite_only
def test_adding_and_changing_a_source_apply_the_rules(
    engine: Engine, policy: SourcePolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolving(monkeypatch, {"ehr.city.example": ["10.20.0.5"]})
    (tmp_path / "imports" / "city").mkdir()
    with session_scope(engine) as session:
        with pytest.raises(UnsafeSource):
            add_source(session, name="etc", hospital="E", base_url="/etc", mode=SourceMode.file, policy=policy)
        with pytest.raises(UnsafeSource):
            add_source(session, name="meta", hospital="M", base_url="http://169.254.169.254/", policy=policy)
        smart = {"type": "smart", "client_id": "c", "private_key_file": "/k.pem", "kid": "k"}
        with pytest.raises(UnsafeSource) as err:
            token_url = "https://169.254.169.254/token"
            add_source(
                session,
                name="sm",
                hospital="S",
                base_url="https://ehr.city.example/fhir",
                auth={**smart, "token_url": token_url},
                policy=policy,
            )
        assert err.value.field == "token_url"
        city = add_source(
            session, name="city", hospital="City", base_url="https://ehr.city.example/fhir", policy=policy
        )
        files = add_source(
            session,
            name="files",
            hospital="F",
            base_url=str(tmp_path / "imports" / "city"),
            mode=SourceMode.file,
            policy=policy,
        )
        for changes in (
            {"base_url": "http://ehr.city.example/fhir"},
            {"base_url": "https://svc:hunter2@ehr.city.example/fhir"},
            {"base_url": "https://ehr.city.example:6379/fhir"},
            {"mode": SourceMode.file, "base_url": "/etc"},
            {"auth": {**smart, "token_url": "https://[fd00:ec2::254]/token"}},
        ):
            with pytest.raises(UnsafeSource):
                update_source(session, "city", changes, policy=policy)
        with pytest.raises(UnsafeSource):
            update_source(session, "files", {"base_url": str(tmp_path)}, policy=policy)
        assert (city.base_url, city.mode, city.auth["type"]) == (
            "https://ehr.city.example/fhir",
            SourceMode.poll,
            "none",
        )
        assert files.base_url == str(tmp_path / "imports" / "city")
        update_source(session, "city", {"base_url": "https://ehr.city.example:8443/fhir/r4"}, policy=policy)
        assert city.base_url == "https://ehr.city.example:8443/fhir/r4"


@sqlite_only
def test_the_settings_of_the_process_are_the_default(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Callers that pass no policy (the CLI, the pages, the scheduler) get the process's settings."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISCHARGE_BRIDGE_IMPORT_ROOTS", str(tmp_path / "nowhere"))
    resolving(monkeypatch, {})
    get_settings.cache_clear()
    try:
        with session_scope(engine) as session:
            with pytest.raises(UnsafeSource, match="plain http"):
                add_source(session, name="a", hospital="A", base_url="http://ehr.test/fhir")
            with pytest.raises(UnsafeSource, match="outside the folders"):
                add_source(session, name="b", hospital="B", base_url=str(tmp_path), mode=SourceMode.file)
        monkeypatch.setenv("DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS", "ehr.test")
        get_settings.cache_clear()
        with session_scope(engine) as session:
            add_source(session, name="a", hospital="A", base_url="http://ehr.test/fhir")
    finally:
        get_settings.cache_clear()


# -- stored sources that break the rules -----------------------------------------------------------------


def _store(session: Session, **fields: Any) -> Source:
    """A source written straight to the table, as one saved before the rules (or under other settings)."""
    source = Source(hospital="Old", **fields)
    session.add(source)
    session.flush()
    return source


@sqlite_only
def test_a_stored_source_that_breaks_the_rules_is_not_synced_and_says_how_to_fix_it(
    engine: Engine, settings: Settings, policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolving(monkeypatch, {})
    with session_scope(engine) as session:
        _store(session, name="creds", base_url="https://svc:hunter2@ehr.city.example/fhir")
        _store(session, name="meta", base_url="http://169.254.169.254/latest")
        _store(session, name="etc", base_url="/etc", mode=SourceMode.file)
    with session_scope(engine) as session:
        for name in ("creds", "meta"):
            with pytest.raises(SourceRefused) as err:
                client_for(get_source(session, name), policy=policy)
            assert f"sources set {name}" in str(err.value) and "hunter2" not in str(err.value)
    for name in ("creds", "meta", "etc"):
        result = sync_source(name, engine=engine, settings=settings)
        assert result.status == "failed" and f"source {name} is not synced" in (result.error or "")
        with session_scope(engine) as session:
            stored = get_source(session, name)
            assert stored.last_error and "hunter2" not in stored.last_error
            assert f"sources set {name}" in stored.last_error or "IT page" in stored.last_error


def test_masked_url_hides_user_info_only() -> None:
    assert masked_url("https://svc:hunter2@ehr.example/fhir") == "https://***@ehr.example/fhir"
    assert masked_url("https://svc@ehr.example:8443/fhir") == "https://***@ehr.example:8443/fhir"
    assert masked_url("https://ehr.example/fhir") == "https://ehr.example/fhir"
    assert masked_url("/srv/imports/city") == "/srv/imports/city"


# -- at each connection ----------------------------------------------------------------------------------


def test_a_name_that_moves_to_a_metadata_address_is_refused_when_connecting(
    policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: fine when saved, 169.254.169.254 by the time of the connection. The address is
    checked where the socket is opened, and no connection is made."""
    resolving(monkeypatch, {"ehr.city.example": ["10.20.0.5"]})
    check_url("https://ehr.city.example/fhir", policy)
    resolving(monkeypatch, {"ehr.city.example": ["169.254.169.254"]})
    opened: list[Any] = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a))
    transport = guarded_transport("https://ehr.city.example/fhir", policy)
    assert transport is not None
    client = FhirClient("https://ehr.city.example/fhir", transport=transport, retry=RetryPolicy(sleep=lambda s: None))
    with client, pytest.raises(SourceRefused, match=r"169\.254\.169\.254"):
        client.capabilities()
    assert opened == []


def test_plain_http_to_a_name_that_leaves_this_host_is_refused_when_connecting(
    policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain http was allowed because the name was loopback when saved; it is not once it points elsewhere."""
    resolving(monkeypatch, {"devbox.example": ["127.0.0.1"]})
    check_url("http://devbox.example:8080/fhir", policy)
    resolving(monkeypatch, {"devbox.example": ["10.20.0.5"]})
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    transport = guarded_transport("http://devbox.example:8080/fhir", policy)
    client = FhirClient("http://devbox.example:8080/fhir", transport=transport, retry=RetryPolicy(max_attempts=1))
    with client, pytest.raises(SourceRefused, match=r"plain http:// to devbox\.example"):
        client.capabilities()


def test_client_for_connects_through_the_guard(policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source saved while its name did not resolve: nothing to refuse before the pass, but the
    connection is refused once the name points at a link-local address; no socket is opened."""
    resolving(monkeypatch, {})
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    stored = Source(name="city", hospital="City", base_url="https://ehr.city.example/fhir")
    with client_for(stored, policy=policy, retry=RetryPolicy(max_attempts=1)) as client:
        resolving(monkeypatch, {"ehr.city.example": ["fe80::9"]})
        with pytest.raises(SourceRefused, match="link-local"):
            client.capabilities()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://169.254.169.254/latest/meta-data/iam", "metadata"),
        ("https://files.example/export/1.ndjson", "link-local"),  # a name that points there
        ("http://storage.example/export/1.ndjson", "plain http"),
        ("https://storage.example:6379/1.ndjson", "port"),
    ],
)
def test_a_bulk_file_on_another_host_meets_the_rules_before_it_is_fetched(
    url: str, why: str, policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's manifest names its files' URLs, and files that need no token are fetched from where
    it says (pre-signed storage): an EHR, or whoever answers for it, must not point this service at a
    metadata address, an internal port or plain http. Refused before anything is sent."""
    resolving(monkeypatch, {"files.example": ["169.254.10.1"], "storage.example": ["10.20.0.9"]})
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    fhir = FhirClient("https://ehr.city.example/fhir", transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    bulk = BulkExportClient(fhir, downloads=vetted_client(policy, field="bulk_file"))
    with pytest.raises(SourceRefused, match=f"(?i)not fetched: Bulk export file: .*{why}"):
        list(bulk.iter_lines(ExportFile(type="Patient", url=url), requires_access_token=False))
    bulk.close()


def test_a_bulk_file_redirected_to_a_metadata_address_is_not_fetched(
    policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage that answers with a redirect: the next URL meets the same rules."""
    resolving(monkeypatch, {"storage.example": ["10.20.0.9"]})
    client = vetted_client(policy, field="bulk_file")
    sent: list[str] = []

    def storage(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    client._transport = httpx.MockTransport(storage)  # the storage host answers; the hook still vets each URL
    with client, pytest.raises(SourceRefused, match="metadata"):
        client.get("https://storage.example/export/1.ndjson")
    assert sent == ["https://storage.example/export/1.ndjson"]


def test_behind_a_proxy_the_guard_steps_aside(policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy resolves names, not this host: the address cannot be checked here (the saved URL is)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.hospital.example:3128")
    assert guarded_transport("https://ehr.city.example/fhir", policy) is None
    monkeypatch.setenv("NO_PROXY", "ehr.city.example")
    assert guarded_transport("https://ehr.city.example/fhir", policy) is not None


@pytest.mark.slow
def test_the_guard_lets_an_allowed_connection_through(policy: SourcePolicy) -> None:
    """A real server on this host (loopback, a high port) answers through the guarded transport."""

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://localhost:{server.server_address[1]}/fhir"
        check_url(base, policy)
        transport = guarded_transport(base, policy)
        assert isinstance(transport, httpx.BaseTransport)
        with FhirClient(base, transport=transport) as client:
            assert client.capabilities()["fhirVersion"] == "4.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_errors_never_carry_what_the_url_held() -> None:
    with pytest.raises(SourceError) as err:
        check_url("https://svc:p%40ss@ehr.city.example/fhir", SourcePolicy())
    assert "p%40ss" not in str(err.value) and "p@ss" not in str(err.value)
