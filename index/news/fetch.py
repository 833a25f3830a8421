"""Polite, safe HTTP fetching: size and time limits, manual redirects, no private addresses.

Every request carries citebot's User-Agent. Hosts are resolved and checked before the first request
and after each redirect; the connection itself goes through `_GuardedBackend`, which resolves the
host again, checks every address and connects to the address it checked, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot reach a private address.
Only public httpx/httpcore API is used: `_GuardedTransport` is a small httpx transport over an
`httpcore.ConnectionPool` with that backend. Environment proxies are not used (trust_env=False),
since a proxy would make the address check meaningless.

Every fetch has one total deadline, from connecting to the last byte (redirects included): the
backend's streams cut each socket operation's timeout to the time left, so a server that sends its
headers or body one byte at a time cannot hold a fetch past it (httpx's own timeouts are per read).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from ..errors import FetchError

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "citebot/0.1 (news question bot; +https://github.com/citebot)"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CONTENT_KINDS: dict[str, frozenset[str]] = {
    "html": frozenset({"text/html", "application/xhtml+xml"}),
    "xml": frozenset({"application/rss+xml", "application/atom+xml", "application/xml", "text/xml"}),
    "text": frozenset({"text/plain"}),
}
KIND_WORDS = {"html": "web page", "xml": "feed", "text": "text file"}
TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 15.0
    max_bytes: int = 5 * 2**20
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_private: bool = False
    concurrency: int = 4

    @classmethod
    def from_env(cls) -> "FetchPolicy":
        """Defaults, with CITEBOT_FETCH_ALLOW_PRIVATE=1/true/yes/on allowing private addresses."""
        flag = os.environ.get("CITEBOT_FETCH_ALLOW_PRIVATE", "").strip().lower()
        return cls(allow_private=flag in TRUE_WORDS)


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    content_type: str
    body: bytes
    etag: str = ""
    last_modified: str = ""
    not_modified: bool = False


class _AddressRefused(Exception):
    """Raised inside the transport when a host resolves to an address that is not allowed."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}")
        self.host = host
        self.address = address


def _is_forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified)


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in resolver order (raises OSError when it does not)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


def _checked_addresses(host: str, port: int) -> list[str]:
    """The host's addresses; raises _AddressRefused if any one of them is not public."""
    addresses = _resolve(host, port)
    for address in addresses:
        if _is_forbidden(address):
            raise _AddressRefused(host, address)
    return addresses


_deadline = threading.local()  # .at: the monotonic time the current thread's fetch must end by


def _time_left(timeout: float | None, late: type[Exception]) -> float | None:
    """timeout cut to what is left of this thread's fetch deadline; raises late once it has passed."""
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise late("the fetch's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline of the fetch using it."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _time_left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses it has just checked."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._connect(host, port, timeout, local_address, socket_options))

    def _connect(self, host: str, port: int, timeout: float | None, local_address: str | None,
                 socket_options: typing.Iterable[typing.Any] | None) -> httpcore.NetworkStream:
        if self._allow_private:
            return self._inner.connect_tcp(host, port, _time_left(timeout, httpcore.ConnectTimeout),
                                           local_address, socket_options)
        try:
            addresses = _checked_addresses(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, _time_left(timeout, httpcore.ConnectTimeout),
                                               local_address, socket_options)
            except httpcore.ConnectError as exc:   # try the next checked address
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _map_exception(exc: Exception, request: httpx.Request) -> Exception:
    if isinstance(exc, httpcore.TimeoutException):
        return httpx.TimeoutException(str(exc), request=request)
    if isinstance(exc, httpcore.ConnectError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)):
        return httpx.TransportError(str(exc), request=request)
    return exc


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: typing.Iterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> typing.Iterator[bytes]:
        try:
            yield from self._stream
        except httpcore.TimeoutException as exc:
            raise _map_exception(exc, self._request) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise _map_exception(exc, self._request) from exc

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose network backend checks addresses."""

    def __init__(self, allow_private: bool, max_connections: int) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_GuardedBackend(allow_private),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = self._pool.handle_request(core_request)
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol) as exc:
            raise _map_exception(exc, request) from exc
        assert isinstance(response.stream, typing.Iterable)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response.stream, request),
                              extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, n // 1024)} KB"


class Fetcher:
    """Fetches URLs under a FetchPolicy. Thread-safe; use as a context manager or call close()."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        p = self.policy
        self._client = httpx.Client(
            transport=_GuardedTransport(p.allow_private, max(1, p.concurrency) * 2),
            follow_redirects=False,
            timeout=httpx.Timeout(p.timeout_s),
            headers={"User-Agent": p.user_agent},
            trust_env=False,
        )

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- checks -----------------------------------------------------------------------------------

    def _check_url(self, url: str, original: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            log.info("invalid URL %r: %s", url, exc)
            raise FetchError(f"{original} is not a valid web address.") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            if url == original:
                raise FetchError(f"{original} is not an http or https address.")
            raise FetchError(f"{original} redirects to {url}, which is not an http or https address.")
        if not self.policy.allow_private:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            try:
                _checked_addresses(parsed.host, port)
            except _AddressRefused as exc:  # the sentence says it; a log warning would say it twice
                log.info("refused %s: %s is %s", original, exc.host, exc.address)
                raise FetchError(f"{original} is refused: {exc.host} is a private or local "
                                 "address (set CITEBOT_FETCH_ALLOW_PRIVATE=1 to allow it).") from None
            except (OSError, UnicodeError) as exc:
                log.info("cannot resolve %s for %s: %s", parsed.host, original, exc)
                raise FetchError(f"{original} cannot be reached: its host name {parsed.host} "
                                 "does not resolve.") from None
        return parsed

    def _check_type(self, original: str, content_type: str, kinds: tuple[str, ...]) -> None:
        media = _media_type(content_type)
        if not media:
            return
        allowed: set[str] = set()
        for kind in kinds:
            if kind not in CONTENT_KINDS:
                raise ValueError(f"unknown content kind {kind!r}")
            allowed |= CONTENT_KINDS[kind]
        if media not in allowed:
            words = " or ".join(KIND_WORDS[k] for k in kinds)
            article = "an" if media[:1] in "aeiou" else "a"
            raise FetchError(f"{original} is {article} {media}, not a {words}.")

    # -- fetching ---------------------------------------------------------------------------------

    def get(self, url: str, *, kinds: tuple[str, ...] = ("html", "xml"), etag: str = "",
            last_modified: str = "") -> Fetched:
        """Fetch one URL within policy.timeout_s in all; raises FetchError with a one-sentence reason
        for anything refused."""
        outer = getattr(_deadline, "at", None)
        _deadline.at = time.monotonic() + self.policy.timeout_s
        try:
            return self._get(url, kinds, etag, last_modified)
        finally:
            _deadline.at = outer

    def _get(self, url: str, kinds: tuple[str, ...], etag: str, last_modified: str) -> Fetched:
        p = self.policy
        original = url
        current = self._check_url(url, original)
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        redirects = 0
        while True:
            try:
                with self._client.stream("GET", current, headers=headers) as response:
                    if response.status_code in REDIRECT_STATUSES:
                        location = response.headers.get("Location", "").strip()
                        if not location:
                            raise FetchError(f"{original} redirects without saying where to.")
                        redirects += 1
                        if redirects > p.max_redirects:
                            raise FetchError(f"{original} redirects more than {p.max_redirects} "
                                             "times.")
                        try:
                            target = str(response.url.join(location))
                        except (httpx.InvalidURL, ValueError):
                            raise FetchError(f"{original} redirects to an invalid address.") from None
                        log.debug("%s: redirect %d to %s", original, redirects, target)
                        current = self._check_url(target, original)
                        continue
                    return self._read(original, response, kinds)
            except httpx.TimeoutException as exc:
                log.info("timeout fetching %s: %r", original, exc)
                raise FetchError(f"{original} did not answer within {_seconds(p.timeout_s)}.") from None
            except httpx.TransportError as exc:
                log.info("cannot fetch %s: %r", original, exc)
                raise FetchError(f"{original} cannot be reached.") from None
            except _AddressRefused as exc:   # the connection-time check (DNS changed after the first)
                log.info("refused %s at connect: %s is %s", original, exc.host, exc.address)
                raise FetchError(f"{original} is refused: {exc.host} is a private or local "
                                 "address (set CITEBOT_FETCH_ALLOW_PRIVATE=1 to allow it).") from None

    def _read(self, original: str, response: httpx.Response, kinds: tuple[str, ...]) -> Fetched:
        p = self.policy
        final = str(response.url)
        etag = response.headers.get("ETag", "")
        last_modified = response.headers.get("Last-Modified", "")
        content_type = response.headers.get("Content-Type", "")
        if response.status_code == 304:
            return Fetched(final, 304, content_type, b"", etag, last_modified, not_modified=True)
        if response.status_code >= 400:
            reason = response.reason_phrase or "error"
            raise FetchError(f"{original} answered HTTP {response.status_code} ({reason}).")
        self._check_type(original, content_type, kinds)
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > p.max_bytes:
            raise FetchError(f"{original} is {_size(int(length))}, over the "
                             f"{_size(p.max_bytes)} limit.")
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > p.max_bytes:
                raise FetchError(f"{original} is over the {_size(p.max_bytes)} limit.")
            if time.monotonic() > _deadline.at:
                raise FetchError(f"{original} did not finish within {_seconds(p.timeout_s)}.")
            chunks.append(chunk)
        return Fetched(final, response.status_code, content_type, b"".join(chunks), etag,
                       last_modified)

    def fetch_many(self, urls: typing.Iterable[str], **kw: typing.Any) -> list[Fetched | FetchError]:
        """get() each URL with policy.concurrency threads; results in input order, errors as values."""
        urls = list(urls)

        def one(u: str) -> Fetched | FetchError:
            try:
                return self.get(u, **kw)
            except FetchError as exc:
                return exc

        if not urls:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.policy.concurrency, len(urls)))) as pool:
            return list(pool.map(one, urls))


def fetch_many(urls: typing.Iterable[str], policy: FetchPolicy | None = None,
               **kw: typing.Any) -> list[Fetched | FetchError]:
    """Module-level helper: a Fetcher for the duration of one batch."""
    with Fetcher(policy) as fetcher:
        return fetcher.fetch_many(urls, **kw)


def host_of(url: str) -> str:
    """The lowercase host name of a URL, without a leading 'www.' ('' if none)."""
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host
