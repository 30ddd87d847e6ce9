"""A raw HTTP/1.1 client for the front-end tests: bytes on a socket and a strict reader of the answers."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class RawConnection:
    """One TCP connection; `read_response(head=...)` reads exactly one response off the stream."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        host, port = url.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_response(self, *, head: bool = False) -> Response:
        """One response (interim 1xx responses included); `head`: the request was HEAD (no body)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError(f"connection closed before a complete response head: {self.buffer!r}")
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        version, status, reason = ([*lines[0].split(" ", 2), ""])[:3]
        assert version == "HTTP/1.1", lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep and name == name.strip(), f"malformed header line {line!r}"
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        response = Response(int(status), reason, headers)
        if response.status < 200 or head or response.status in (204, 304):
            return response
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            if not self._fill():
                raise EOFError("connection closed inside a response body")
        response.body, self.buffer = self.buffer[:length], self.buffer[length:]
        return response

    def closed_by_server(self, within: float = 3.0) -> bool:
        """True when the server closes the connection (EOF or reset) within `within` seconds."""
        deadline = time.monotonic() + within
        self.sock.settimeout(0.2)
        try:
            while time.monotonic() < deadline:
                try:
                    if not self._fill():
                        return True
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    return True
            return False
        finally:
            self.sock.settimeout(10.0)


def request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: test"]
    all_headers = dict(headers or {})
    if body and "Transfer-Encoding" not in all_headers:
        all_headers.setdefault("Content-Length", str(len(body)))
    head += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
