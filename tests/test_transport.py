"""The network seam on its own: GuardedTransport against the loopback feed server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpcore
import httpx
import pytest
from feedserver import FeedServer

from newsletter.transport import DEADLINE, AddressRefused, GuardedTransport, map_httpcore_exceptions


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def client(allowed: frozenset[str] = frozenset()) -> httpx.Client:
    return httpx.Client(transport=GuardedTransport(allowed, socket.getaddrinfo, time.monotonic), trust_env=False)


def test_a_loopback_address_is_refused_before_any_request(server: FeedServer) -> None:
    with client() as c, pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is a loopback address"):
        c.get(server.url("/arxiv.rss"))
    assert server.hits() == []


def test_an_allowed_host_is_fetched_and_every_request_connects_afresh(server: FeedServer) -> None:
    with client(frozenset({"127.0.0.1"})) as c:
        first = c.get(server.url("/arxiv.rss"))
        second = c.get(server.url("/arxiv.rss"))
    assert first.status_code == second.status_code == 200 and b"<rss" in first.content
    assert [h.status for h in server.hits()] == [200, 200]


def test_a_deadline_in_the_past_stops_the_request_at_connect(server: FeedServer) -> None:
    with client(frozenset({"127.0.0.1"})) as c, pytest.raises(httpx.ConnectTimeout, match="deadline reached"):
        c.get(server.url("/arxiv.rss"), extensions={DEADLINE: time.monotonic() - 1})
    assert server.hits() == []


def test_a_deadline_cuts_a_drip_inside_the_headers(server: FeedServer) -> None:
    with client(frozenset({"127.0.0.1"})) as c, pytest.raises(httpx.ReadTimeout):
        c.get(server.url("/drip-headers"), extensions={DEADLINE: time.monotonic() + 0.3})
    assert server.state.counts["/drip-headers"] == 1


def test_httpcore_exceptions_map_to_the_most_specific_httpx_one() -> None:
    for raised, expected in [
        (httpcore.ReadTimeout("r"), httpx.ReadTimeout),
        (httpcore.ConnectError("c"), httpx.ConnectError),
        (httpcore.RemoteProtocolError("p"), httpx.RemoteProtocolError),
    ]:
        with pytest.raises(expected) as info, map_httpcore_exceptions():
            raise raised
        assert type(info.value) is expected and info.value.__cause__ is raised
    with pytest.raises(KeyError), map_httpcore_exceptions():
        raise KeyError("not httpcore's: passes through")
