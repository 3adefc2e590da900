"""The gateway's HTTP parsers: answers from the pods (gateway/upstream.py) and requests from the clients
(gateway/front.py) are handed over only once whole, whatever the bytes' arrival; what cannot be one is Broken (an
answer) or a 4xx naming what is wrong (a request), never a hang."""

from __future__ import annotations

import pytest

from modelfleet.gateway.front import BadRequest, body_of, parse_head
from modelfleet.gateway.upstream import MAX_HEADER_BYTES, Broken, parse_answer

LENGTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'
CHUNKED = (
    b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n7;ext=1\r\n: true}\r\n0\r\nX-Trailer: t\r\n\r\n'
)


@pytest.mark.parametrize("answer", [LENGTH, CHUNKED], ids=["content-length", "chunked"])
def test_an_answer_is_whole_only_with_its_last_byte_wherever_the_bytes_split(answer: bytes) -> None:
    for cut in range(len(answer)):
        assert parse_answer(answer[:cut], eof=False) is None, cut
    parsed = parse_answer(answer, eof=False)
    assert parsed is not None
    got, keep, used = parsed
    assert (got.status, got.body, keep, used) == (200, b'{"a": true}', True, len(answer))


def test_the_headers_are_read_with_lower_case_names_and_connection_close_is_not_kept() -> None:
    answer = b"HTTP/1.1 422 Unprocessable\r\nX-Request-Id: r1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    parsed = parse_answer(answer, eof=False)
    assert parsed is not None
    got, keep, _used = parsed
    assert (got.status, got.headers["x-request-id"], got.body, keep) == (422, "r1", b"{}", False)


def test_an_answer_without_a_length_ends_with_the_connection_and_one_without_a_body_needs_none() -> None:
    answer = b"HTTP/1.1 200 OK\r\n\r\npartial"
    assert parse_answer(answer, eof=False) is None
    parsed = parse_answer(answer, eof=True)
    assert parsed is not None and parsed[0].body == b"partial" and parsed[1] is False
    no_content = parse_answer(b"HTTP/1.1 204 No Content\r\n\r\n", eof=False)
    assert no_content is not None and no_content[0].body == b"" and no_content[1] is True


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * MAX_HEADER_BYTES,
    ],
    ids=["not-http", "bad-length", "bad-chunk-size", "headers-too-large"],
)
def test_what_cannot_be_an_answer_is_broken(garbage: bytes) -> None:
    with pytest.raises(Broken):
        parse_answer(garbage, eof=False)


REQUEST = (
    b'POST /v2/models/iris%2Dv2/infer?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nX-Request-Id: r\r\n\r\n{""}'
)


def test_a_request_is_whole_only_with_its_last_byte_and_its_path_is_decoded() -> None:
    for cut in range(len(REQUEST)):
        head = parse_head(REQUEST[:cut])
        assert head is None or body_of(REQUEST[:cut], head, 100) is None, cut
    head = parse_head(REQUEST)
    assert head is not None
    assert (head.method, head.path, head.target, head.headers["x-request-id"]) == (
        "POST",
        "/v2/models/iris-v2/infer",
        "/v2/models/iris%2Dv2/infer?x=1",
        "r",
    )
    assert body_of(REQUEST, head, 100) == (b'{""}', len(REQUEST))
    assert head.keep_alive


def test_a_chunked_request_body_is_joined_and_http_1_0_closes_unless_asked_to_keep() -> None:
    raw = b"POST /v2/models/m/infer HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    head = parse_head(raw)
    assert head is not None and not head.keep_alive
    assert body_of(raw, head, 100) == (b"{}", len(raw))
    kept = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert kept is not None and kept.keep_alive


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /x\r\n\r\n", 400),
        (b"GET http://elsewhere/ HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo-Colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Id: a\nInjected: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (64 * 1024) + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=[
        "no-version",
        "absolute-target",
        "http-2",
        "header-without-colon",
        "bare-line-feed",
        "head-too-large",
        "negative-length",
        "body-over-bound",
        "unknown-encoding",
        "chunk-over-bound",
        "bad-chunk-size",
    ],
)
def test_a_bad_request_is_refused_with_its_status(raw: bytes, status: int) -> None:
    with pytest.raises(BadRequest) as refused:
        head = parse_head(raw)
        assert head is not None
        body_of(raw + b"a" * 200, head, 100)
    assert refused.value.status == status
