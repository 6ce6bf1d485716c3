"""Where a source may point: the rules a base URL or a folder meets before it is saved, and again for a
stored source before each pass and at each connection (issue 16, secure by default).

A base URL (and a SMART token URL):

- holds no user name or password: credentials belong in the auth settings (``--auth basic``), where
  only the name of the variable or file that holds the secret is stored;
- is HTTPS, unless its host is this one (every address it resolves to is loopback) or
  ``DISCHARGE_BRIDGE_ALLOW_PLAIN_HTTP`` is on;
- uses a web port: 80, 443, 8080, 8443, or any port from 1024 up except the well-known ports of
  databases, caches, queues and cluster services (SERVICE_PORTS) that answer a request when asked;
- names no cloud metadata service (METADATA_HOSTS), and no address its host resolves to is a metadata
  address (METADATA_ADDRESSES), link-local (169.254.0.0/16, fe80::/10: where metadata services
  answer), unspecified, multicast or broadcast. Every address counts, so a name that resolves to a
  hospital address *and* 169.254.169.254 is refused.

A host named in ``DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS`` skips the last three rules: the operator
vouches for it (a lab EHR on port 2222, an HTTP-only test server). Credentials stay refused.

A name that does not resolve now (set up before the DNS entry exists) is accepted. That, and DNS
rebinding (a name that resolves elsewhere by the time of the pass), are why ``guarded_transport``
checks the addresses again where each socket opens, and connects to the address it checked. Behind an
HTTP proxy (``HTTPS_PROXY`` and friends) the proxy resolves names, so that check cannot run here and
is skipped; the rules are still applied when the source is saved and before each pass.

A file source's folder lies under an import root (``DISCHARGE_BRIDGE_IMPORT_ROOTS``; default: the data
folder's ``imports/`` and the bundled ``fhir_fixtures/``), once ``..`` and symlinks are resolved; no
symlink inside it may lead out of the roots either.

A stored source that breaks the rules (saved before them, or under other settings) is not synced:
each pass fails at once with SourceRefused, whose message says what to change; the IT page and
``sources list`` show it as the source's last error.

Messages never repeat what a URL held before its host, and each is English marked with ``N_`` with
its values apart, so the IT page shows it in the reader's language (``sources.po``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from discharge_bridge.config import PROJECT_ROOT, Settings, get_settings
from discharge_bridge.fhir import FhirFatalError
from discharge_bridge.sources.errors import SourceError
from discharge_bridge.sources.models import Source, SourceMode

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def N_(message: str) -> str:  # the gettext convention for "translate later" (the IT page translates)
    return message


WEB_PORTS = frozenset({80, 443, 8080, 8443})
# Ports from 1024 up of services that are not a FHIR server but answer whatever reaches them.
SERVICE_PORTS = frozenset(
    {
        1433,  # SQL Server
        1521,  # Oracle
        2049,  # NFS
        2375,  # Docker API
        2376,  # Docker API (TLS)
        2379,  # etcd
        2380,  # etcd peers
        3306,  # MySQL
        3389,  # RDP
        5432,  # PostgreSQL
        5672,  # AMQP
        5984,  # CouchDB
        6379,  # Redis
        6443,  # Kubernetes API
        9042,  # Cassandra
        9092,  # Kafka
        9200,  # Elasticsearch
        9300,  # Elasticsearch nodes
        10250,  # kubelet
        10255,  # kubelet (read-only)
        11211,  # memcached
        27017,  # MongoDB
        27018,  # MongoDB shards
    }
)
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, Azure, GCP, OpenStack, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)

CREDENTIALS = N_(
    "the URL holds a user name or password: give it without them, and the credentials in the authentication "
    "settings (--auth basic --username NAME --password-env VARIABLE or --password-file FILE; on the IT page: "
    "authentication Basic)"
)
METADATA_HOST = N_("%(host)s is the name of a cloud metadata service, never of a FHIR server")
METADATA_ADDRESS = N_("%(address)s is the address of a cloud metadata service, never of a FHIR server")
METADATA_ADDRESS_OF = N_("%(host)s is at %(address)s, the address of a cloud metadata service, never of a FHIR server")
LINK_LOCAL = N_(
    "%(address)s is a link-local address (where cloud metadata services answer), not a FHIR server's: "
    "if it really is one, name the host in DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS"
)
LINK_LOCAL_OF = N_(
    "%(host)s is at %(address)s, a link-local address (where cloud metadata services answer), not a FHIR "
    "server's: if it really is one, name the host in DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS"
)
NOT_A_SERVER = N_("%(address)s is not the address of a server (unspecified, multicast or broadcast)")
NOT_A_SERVER_OF = N_("%(host)s is at %(address)s, which is not the address of a server")
PLAIN_HTTP = N_(
    "plain http:// to %(host)s would carry patient data and credentials unencrypted: use https:// (plain "
    "http is allowed only to this host itself, such as http://127.0.0.1:8080, or to every host with "
    "DISCHARGE_BRIDGE_ALLOW_PLAIN_HTTP=true)"
)
PORT = N_(
    "port %(port)s is not a web port: use 443, 80, 8080, 8443 or a port from 1024 up that no database or "
    "other well-known service uses (or name the host in DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS)"
)
BAD_PORT = N_("the URL's port is not a number from 1 to 65535")
FOLDER_OUTSIDE = N_(
    "%(folder)s is outside the folders file sources may read (%(roots)s): copy the export under one of "
    "them, or add its folder to DISCHARGE_BRIDGE_IMPORT_ROOTS"
)
FOLDER_LINK = N_("%(link)s links to %(leads_to)s, outside the folders file sources may read (%(roots)s)")
FIELD_NAMES = {"base_url": "base URL", "token_url": "token URL", "bulk_file": "Bulk export file"}


class UnsafeSource(SourceError):
    """A base URL, token URL or folder the rules refuse; ``template`` and ``params`` let a page say it
    in the reader's language, next to ``field``."""

    def __init__(self, template: str, *, field: str = "base_url", **params: object) -> None:
        self.template, self.params, self.field = template, params, field
        message = template % params if params else template
        super().__init__(message if field == "base_url" else f"{FIELD_NAMES.get(field, field)}: {message}")


class SourceRefused(FhirFatalError):
    """A stored source, or a connection of one, that the rules refuse: nothing is sent, and a person has
    to change the source (or the settings) before it syncs again."""


@dataclass(frozen=True)
class SourcePolicy:
    """The settings the rules read. ``import_roots`` are kept as given and resolved when used."""

    allow_plain_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    import_roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> SourcePolicy:
        roots = settings.import_roots
        if roots is None:
            roots = [settings.data_dir / "imports", PROJECT_ROOT / "fhir_fixtures"]
        return cls(
            allow_plain_http=settings.allow_plain_http,
            allowed_hosts=frozenset(_host(h) for h in settings.allowed_source_hosts if h.strip()),
            import_roots=tuple(roots),
        )

    def allows(self, host: str) -> bool:
        return _host(host) in self.allowed_hosts


def current_policy() -> SourcePolicy:
    """The rules as this process's settings set them (what the CLI, the pages and the scheduler use)."""
    return SourcePolicy.of(get_settings())


def _host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


# -- addresses -------------------------------------------------------------------------------------------


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def addresses_of(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to now; [] when it does not resolve."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    addresses: list[Address] = []
    for *_, where in found:
        address = _literal(str(where[0]).split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0") is not part of it
        if address is not None and address not in addresses:
            addresses.append(address)
    return addresses


def _unwrapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_address(host: str, address: Address, *, field: str = "base_url") -> None:
    """Raise UnsafeSource when ``address`` (one of ``host``'s) is no place for a FHIR server."""
    plain = _unwrapped(address)
    named = _literal(host) is None
    if plain in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        template = METADATA_ADDRESS_OF if named else METADATA_ADDRESS
    elif plain.is_link_local:
        template = LINK_LOCAL_OF if named else LINK_LOCAL
    elif plain.is_unspecified or plain.is_multicast or plain == ipaddress.IPv4Address("255.255.255.255"):
        template = NOT_A_SERVER_OF if named else NOT_A_SERVER
    else:
        return
    params = {"host": host, "address": str(plain)} if named else {"address": str(plain)}
    raise UnsafeSource(template, field=field, **params)


def _port_allowed(port: int) -> bool:
    return port in WEB_PORTS or (port >= 1024 and port not in SERVICE_PORTS)


def check_url(url: str, policy: SourcePolicy, *, field: str = "base_url") -> None:
    """Raise UnsafeSource unless ``url`` meets the rules above. Its shape (scheme, host) is the caller's
    to check first; a URL without one passes here untouched."""
    parts = urlsplit(url.strip())
    if "@" in parts.netloc:
        raise UnsafeSource(CREDENTIALS, field=field)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeSource(BAD_PORT, field=field) from None
    host = _host(parts.hostname)
    if policy.allows(host):
        return
    if host in METADATA_HOSTS:
        raise UnsafeSource(METADATA_HOST, field=field, host=host)
    addresses = addresses_of(host, port)
    for address in addresses:
        check_address(host, address, field=field)
    if not _port_allowed(port):
        raise UnsafeSource(PORT, field=field, port=port)
    loopback = bool(addresses) and all(_unwrapped(a).is_loopback for a in addresses)
    if parts.scheme == "http" and not (loopback or policy.allow_plain_http):
        raise UnsafeSource(PLAIN_HTTP, field=field, host=host)


# -- folders ---------------------------------------------------------------------------------------------


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _link_out(folder: Path, roots: list[Path]) -> tuple[Path, Path] | None:
    """A symlink under ``folder`` that leads out of ``roots``, with where it leads; None if there is none."""
    seen: set[Path] = set()
    pending = [folder]
    while pending:
        here = pending.pop()
        real = here.resolve()
        if real in seen or not here.is_dir():
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue  # unreadable: the pass reports it
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                if not _under(target, roots):
                    return path, target
            if entry.is_dir():
                pending.append(path)
    return None


def check_folder(path: str, policy: SourcePolicy) -> Path:
    """The folder (or file) with ``~``, ``..`` and symlinks resolved; UnsafeSource unless it and every
    symlink under it stay under an import root."""
    folder = Path(path).expanduser().resolve()
    roots = [root.expanduser().resolve() for root in policy.import_roots]
    shown = ", ".join(str(root) for root in roots) or "none: DISCHARGE_BRIDGE_IMPORT_ROOTS is empty"
    if not _under(folder, roots):
        raise UnsafeSource(FOLDER_OUTSIDE, folder=str(folder), roots=shown)
    escape = _link_out(folder, roots)
    if escape is not None:
        raise UnsafeSource(FOLDER_LINK, link=str(escape[0]), leads_to=str(escape[1]), roots=shown)
    return folder


# -- a whole source --------------------------------------------------------------------------------------


def check_settings(mode: SourceMode, base_url: str, auth: dict[str, Any], policy: SourcePolicy) -> str:
    """The base URL as stored (a folder resolved) once it, and a SMART token URL, meet the rules."""
    if mode == SourceMode.file:
        return str(check_folder(base_url, policy))
    check_url(base_url, policy)
    token_url = auth.get("token_url")
    if isinstance(token_url, str) and token_url:
        check_url(token_url, policy, field="token_url")
    return base_url


def check_stored(source: Source, policy: SourcePolicy) -> None:
    """Raise SourceRefused when a stored source breaks the rules: it is not synced until changed."""
    try:
        check_settings(SourceMode(source.mode), source.base_url, source.auth or {}, policy)
    except UnsafeSource as exc:
        raise SourceRefused(
            f"source {source.name} is not synced: {exc}. Change it with `discharge-bridge sources set "
            f"{source.name} ...` or with Change on the IT page"
        ) from None


def masked_url(url: str) -> str:
    """``url`` with whatever it holds before its host (user name, password) shown as ``***``."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


# -- at each connection ----------------------------------------------------------------------------------


class _GuardedBackend(httpcore.SyncBackend):
    """Opens a socket only to an address that passes the rules, checked as the connection is made:
    the name is resolved here, each address checked, and the socket opened to that very address (so
    a second lookup cannot hand out another one). TLS still verifies the certificate for the name."""

    def __init__(self, policy: SourcePolicy, plain_host: str | None) -> None:
        self.policy = policy
        self.plain_host = plain_host  # the base URL's host when it is plain http: it must stay loopback

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self.policy.allows(host):
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = addresses_of(host, port)
        try:
            for address in addresses:
                check_address(host, address)
            if _host(host) == self.plain_host and not all(_unwrapped(a).is_loopback for a in addresses):
                raise UnsafeSource(PLAIN_HTTP, host=host)
        except UnsafeSource as exc:
            raise SourceRefused(f"not connected to {host}: {exc} (checked as the connection was made)") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport (same TLS and pool settings), whose connections go through the guard."""

    def __init__(self, backend: _GuardedBackend) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,  # httpx's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def _proxied(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)  # type: ignore[attr-defined]


def guarded_transport(base_url: str, policy: SourcePolicy) -> httpx.BaseTransport | None:
    """A transport for the clients of one source that checks each connection's address; None where an
    HTTP proxy from the environment carries the traffic (httpx then uses it, as without a transport)."""
    if _proxied(base_url):
        return None
    parts = urlsplit(base_url)
    plain_host = None
    if parts.scheme == "http" and not policy.allow_plain_http and parts.hostname:
        plain_host = _host(parts.hostname)
    return _GuardedTransport(_GuardedBackend(policy, plain_host))


def vetted_client(
    policy: SourcePolicy, *, field: str, timeout: float = 60.0, headers: dict[str, str] | None = None
) -> httpx.Client:
    """A client without credentials for URLs that data names rather than hospital IT: the files of a
    Bulk export on another host (pre-signed object storage), a receiving organisation's FHIR server
    from the directory. Each URL, a redirect's too, meets the rules of a base URL before it is sent
    (``field`` names the setting in the refusal), and each connection is checked as it opens."""

    def vet(request: httpx.Request) -> None:
        try:
            check_url(str(request.url), policy, field=field)
        except UnsafeSource as exc:
            raise SourceRefused(f"not fetched: {exc}") from None

    transport = None if _proxied("https://files.invalid/") else _GuardedTransport(_GuardedBackend(policy, None))
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        transport=transport,
        headers=headers,
        event_hooks={"request": [vet]},
    )
