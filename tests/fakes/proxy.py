"""A forward HTTP proxy on loopback that goes out from its own source address (127.0.0.N): an
egress group in miniature. The fake venue behind it sees each proxy as a different client IP.

One request per connection (`Connection: close` upstream and back), plain http targets only
(absolute-form request lines, as aiohttp sends them to an http proxy); CONNECT is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class LoopbackProxy:
    def __init__(self, source: str, user: str | None = None, password: str | None = None) -> None:
        self.source = source
        self.auth = (user, password) if user else None
        self.requests: list[str] = []  # "METHOD url" of each forwarded request
        self.refused = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        who = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"http://{who}127.0.0.1:{self.port}"

    async def __aenter__(self) -> LoopbackProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = [h for h in lines[1:] if h]
            if (
                method == "CONNECT"
                or not target.startswith("http://")
                or not self._allowed(headers)
            ):
                self.refused += 1
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
                )
                return
            parts = urlsplit(target)
            self.requests.append(f"{method} {target}")
            up_reader, up_writer = await asyncio.open_connection(
                parts.hostname, parts.port or 80, local_addr=(self.source, 0)
            )
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = [
                h
                for h in headers
                if not h.lower().startswith(("proxy-", "connection:", "keep-alive:"))
            ]
            out = [f"{method} {path} {version}", *kept, "Connection: close", "", ""]
            up_writer.write("\r\n".join(out).encode("latin-1"))
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _allowed(self, headers: list[str]) -> bool:
        if self.auth is None:
            return True
        import base64

        token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return f"proxy-authorization: basic {token}".lower() in (h.lower() for h in headers)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
