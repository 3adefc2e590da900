"""A TCP proxy between the operator and the API server that can stall: the connections open when `stall()` is called
stop forwarding in both directions without closing (a half-dead watch stream, a wedged load balancer); connections
opened afterwards work. TLS passes through untouched (the API server's certificate names 127.0.0.1, any port)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass
class Link:
    stalled: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)  # never set: a stalled link stays stalled
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class StallingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.links: list[Link] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stalling-proxy", daemon=True)

    def start(self) -> StallingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        link = Link(writers=[writer, up_writer])
        self.links.append(link)
        await asyncio.gather(self._pipe(reader, up_writer, link), self._pipe(up_reader, writer, link))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
        try:
            while data := await reader.read(65536):
                if link.stalled:  # hold the bytes for good: the other side sees silence, not a close
                    await link.release.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not link.stalled:
                writer.close()

    def stall(self) -> int:
        """Stalls every connection open now; returns how many."""
        current = [link for link in self.links if not link.stalled]
        for link in current:
            link.stalled = True
        return len(current)

    def stop(self) -> None:
        def close() -> None:
            for link in self.links:
                for w in link.writers:
                    w.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self._thread.join(timeout=10)
