"""An HTTP-like echo server and a curl-like fetch, both over the TCP stream.

- `HttpEchoServer` listens on a port (8080 by default). For each connection it reads one request
  (the request line and headers up to the blank line, then Content-Length bytes of body) and
  answers "HTTP/1.1 200 OK" with a body of `response_size` bytes (a path "/<n>" asks for n), then
  closes the connection (Connection: close), as a one-shot server does.
- `Fetch` is curl 7.88.1 (Debian 12), checked on this machine: "GET <path> HTTP/1.1" with
  Host (address:port), User-Agent curl/7.88.1 and Accept */*; with a body (-d) it is a POST
  with Content-Length and Content-Type application/x-www-form-urlencoded. It reads the response
  to its Content-Length or to EOF and prints the body. Its errors, and exit statuses, as curl
  prints them: "curl: (7) Failed to connect to A port P after T ms: Couldn't connect to server"
  (ECONNREFUSED and the other errors connect() returns; with ETIMEDOUT, the kernel's SYN
  retries spent, the same words and exit status 28), "curl: (28) Connection timed out after T
  milliseconds" (-m), "curl: (52) Empty
  reply from server" (EOF before any byte), "curl: (56) Recv failure: Connection reset by peer".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..addresses import parse_address
from ..errors import UsageError
from .events import (
    Accepted, Action, Close, Connect, Connected, ConnectionReset, DataReceived, Done, Event, Listen, Open,
    PeerClosed, Program, Send, SetTimer, SocketError, Started, TimerFired, CancelTimer,
)

CURL_VERSION = "7.88.1"
RESPONSE_BYTE = b"r"


def parse_request(buffer: bytes) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, path, headers, body) once the whole request is in `buffer`, else None."""
    head, sep, rest = buffer.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return ("BAD", "", {}, b"")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if len(rest) < length:
        return None
    return parts[0], parts[1], headers, rest[:length]


def response(size: int, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
            + RESPONSE_BYTE * size)


class HttpEchoServer(Program):
    """The server: socket "http", one connection after another."""

    name = "http-server"

    def __init__(self, port: int = 8080, response_size: int = 3) -> None:
        super().__init__()
        self.port, self.response_size = port, response_size
        self.buffers: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, int]] = []     # (method, path, body length)

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("http", "tcp"), Listen("http", self.port)]
        if isinstance(event, Accepted):
            self.buffers[event.sock] = b""
            return []
        if isinstance(event, DataReceived) and event.sock in self.buffers:
            self.buffers[event.sock] += event.data
            request = parse_request(self.buffers[event.sock])
            if request is None:
                return []
            method, path, _headers, body = request
            self.requests.append((method, path, len(body)))
            del self.buffers[event.sock]
            size = int(path[1:]) if path[1:].isdigit() else self.response_size
            status = "200 OK" if method != "BAD" else "400 Bad Request"
            return [Send(event.sock, response(size if method != "BAD" else 0, status)), Close(event.sock)]
        if isinstance(event, (PeerClosed, ConnectionReset)) and event.sock in self.buffers:
            del self.buffers[event.sock]
            return [Close(event.sock)]
        return []


@dataclass(frozen=True)
class FetchResult:
    url: str
    status_line: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    received: int = 0
    error: str = ""            # curl's message, "" on success
    exit_status: int = 0
    elapsed_ms: int = 0


def parse_url(url: str) -> tuple[str, int, str]:
    """http://ADDRESS[:PORT][/PATH] (netsim's fetch takes addresses; names are resolved first)."""
    if not isinstance(url, str) or not url.startswith("http://"):
        raise UsageError(f"fetch URL {url!r} must start with http:// (e.g. http://10.244.1.2:8080/)")
    rest = url[len("http://"):]
    hostport, slash, path = rest.partition("/")
    host, colon, port = hostport.partition(":")
    if colon and not port.isdigit():
        raise UsageError(f"fetch URL {url!r}: port {port!r} is not a number")
    number = int(port) if colon else 80
    if not 0 < number < 65536:
        raise UsageError(f"fetch URL {url!r}: port {number} is out of range 1-65535")
    return str(parse_address(host, "fetch host")), number, "/" + path if slash else "/"


class Fetch(Program):
    """curl URL [-d DATA]: socket "curl"; timer "timeout" (-m, 0: none)."""

    name = "curl"

    def __init__(self, url: str, data: bytes | None = None, max_time_ms: int = 0, host_name: str = "",
                 host_header: str = "") -> None:
        super().__init__()
        self.url = url
        self.host_header = host_header             # curl -H "Host: NAME": written in its own Host line's place
        self.host, self.port, self.path = parse_url(url)
        self.host_name = host_name or self.host    # the host as typed: the Host header and curl's messages
        self.data, self.max_time_ms = data, max_time_ms
        self.buffer = bytearray()                  # what arrived (appended to in place: no copy per segment)
        self.expected: int | None = None            # the head's length plus Content-Length, once the head is in
        self.started_at = 0
        self.connected = False

    def request(self) -> bytes:
        host = f"{self.host_name}:{self.port}" if self.port != 80 else self.host_name
        host = self.host_header or host
        lines = [f"{'POST' if self.data is not None else 'GET'} {self.path} HTTP/1.1", f"Host: {host}",
                 f"User-Agent: curl/{CURL_VERSION}", "Accept: */*"]
        if self.data is not None:
            lines += [f"Content-Length: {len(self.data)}", "Content-Type: application/x-www-form-urlencoded"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (self.data or b"")

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            self.started_at = event.at
            out: list[Action] = [Open("curl", "tcp"), Connect("curl", self.host, self.port)]
            if self.max_time_ms:
                out.append(SetTimer("timeout", self.max_time_ms * 1000))
            return out
        if isinstance(event, Connected) and event.sock == "curl":
            self.connected = True
            return [Send("curl", self.request())]
        if isinstance(event, DataReceived) and event.sock == "curl":
            self.buffer += event.data
            if self.expected is None:       # the head is read once, when its blank line has arrived
                head, sep, _ = bytes(self.buffer).partition(b"\r\n\r\n")
                length = self.content_length(head) if sep else None
                if length is not None:
                    self.expected = len(head) + len(sep) + length
            if self.expected is not None and len(self.buffer) >= self.expected:
                return self.finish(event.at)
            return []
        if isinstance(event, PeerClosed) and event.sock == "curl":
            if not self.buffer:
                return self.fail(52, "Empty reply from server", event.at)
            return self.finish(event.at)
        if isinstance(event, ConnectionReset) and event.sock == "curl":
            return self.fail(56, "Recv failure: Connection reset by peer", event.at)
        if isinstance(event, SocketError) and event.sock == "curl":
            # lib/connect.c: the message names CURLE_COULDNT_CONNECT; an ETIMEDOUT from the
            # kernel (tcp_syn_retries spent) turns the result into CURLE_OPERATION_TIMEDOUT (28)
            elapsed = (event.at - self.started_at) // 1000
            status = 28 if event.errno == "ETIMEDOUT" else 7
            return self.fail(status, f"Failed to connect to {self.host_name} port {self.port} after {elapsed} ms: "
                                     f"Couldn't connect to server", event.at)
        if isinstance(event, TimerFired) and event.name == "timeout":
            what = "Operation" if self.connected else "Connection"
            return self.fail(28, f"{what} timed out after {self.max_time_ms} milliseconds", event.at)
        return []

    @staticmethod
    def content_length(head: bytes) -> int | None:
        for line in head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-length" and value.strip().isdigit():
                return int(value.strip())
        return None

    def finish(self, at: int) -> list[Action]:
        head, _, body = bytes(self.buffer).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = tuple((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
        result = FetchResult(self.url, lines[0], headers, body, len(self.buffer), "", 0, (at - self.started_at) // 1000)
        return [CancelTimer("timeout"), Close("curl"), Done(result, 0)]

    def fail(self, status: int, message: str, at: int) -> list[Action]:
        result = FetchResult(self.url, received=len(self.buffer), error=f"curl: ({status}) {message}",
                             exit_status=status, elapsed_ms=(at - self.started_at) // 1000)
        return [CancelTimer("timeout"), Close("curl"), Done(result, status)]


def format_fetch(result: FetchResult) -> tuple[str, str]:
    """(stdout, stderr) of `curl -sS URL`: the body, or curl's error line."""
    if result.error:
        return "", result.error + "\n"
    return result.body.decode("latin-1"), ""
