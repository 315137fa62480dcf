"""Where a webhook may be delivered: the server-side request forgery rule (OWASP API7).

A URL is `http` or `https`, without credentials, and every address its host resolves to must
be public: loopback, private, link-local, unique-local, shared (CGNAT), multicast, reserved
and unspecified addresses are refused, and so are IPv6 addresses that embed such an IPv4
address (mapped, 6to4, Teredo, NAT64). `WEBHOOK_ALLOW_PRIVATE=true` lifts that rule for
tests and local development; the cloud metadata addresses stay refused even then.

The rule is applied when an endpoint is registered or changed, and again before every
attempt: the delivery connects to the very address that was checked (`Target.addresses`),
so a name that resolves elsewhere a moment later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedUrl(ValueError):
    """The URL may not receive webhooks; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: its host as sent (`Host`, TLS server name) and the addresses to use."""

    url: httpx.URL
    host: str
    addresses: tuple[IPAddress, ...]


def parse_url(url: str) -> httpx.URL:
    """The URL, if its form is acceptable (scheme, host, no credentials, length)."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise RefusedUrl(f"not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise RefusedUrl("the URL must use http or https")
    if not parsed.host:
        raise RefusedUrl("the URL has no host")
    if parsed.userinfo:
        raise RefusedUrl("the URL must not contain credentials")
    return parsed


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why webhooks may not go to this address; None when they may."""
    embedded = _embedded_ipv4(address)
    # The IPv4 address an IPv6 one carries is where the packets end up: judged first.
    candidates = [address] if embedded is None else [embedded, address]
    for candidate in candidates:
        if candidate in METADATA_ADDRESSES:
            return f"{address} is a cloud metadata address"
    if allow_private:
        return None
    for candidate in candidates:
        if candidate.is_loopback:
            return f"{address} is a loopback address"
        if candidate.is_unspecified:
            return f"{address} is the unspecified address"
        if candidate.is_link_local:
            return f"{address} is a link-local address"
        if isinstance(candidate, ipaddress.IPv4Address) and candidate in _SHARED:
            return f"{address} is a shared (carrier-grade NAT) address"
        if candidate.is_private:
            return f"{address} is a private address"
        if candidate.is_multicast:
            return f"{address} is a multicast address"
        if not candidate.is_global:
            return f"{address} is not a public address"
    return None


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """The addresses of a host name (or the literal address it is)."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise RefusedUrl(f"the host {host} does not resolve ({exc.__class__.__name__})") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise RefusedUrl(f"the host {host} does not resolve")
    return tuple(addresses)


async def check_url(url: str, *, allow_private: bool) -> Target:
    """The URL with the addresses it may be delivered to; RefusedUrl if any of them (or the
    URL's form) is refused."""
    parsed = parse_url(url)
    host = parsed.raw_host.decode("ascii")
    addresses = await resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason is not None:
            name = "" if host == str(address) or host.strip("[]") == str(address) else f"{host}: "
            raise RefusedUrl(f"{name}{reason}; webhooks go to public addresses only")
    return Target(url=parsed, host=host, addresses=addresses)
