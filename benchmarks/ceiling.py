"""The ceiling: a bare consume → republish loop with pipelined confirms, nothing else.

Run as its own process by the benchmark::

    python -m benchmarks.ceiling AMQP_URL SOURCE_QUEUE EXCHANGE ROUTING_KEY COUNT PREFETCH

It consumes ``COUNT`` messages from ``SOURCE_QUEUE`` (a quorum queue the benchmark pre-loaded
with the same bodies the router gets), publishes each unchanged (persistent, with a small
header set like the router's) to ``EXCHANGE`` with confirms pipelined, and acks the source
with ``multiple=True`` up to the longest confirmed prefix. No parsing, no validation, no
routing, no logging: what one Python process on pika can move through this broker.
Prints one JSON line with its own timing and CPU when done, then waits for SIGTERM (so the
benchmark can still read its CPU and peak RSS from /proc).
"""

from __future__ import annotations

import resource
import signal
import sys
import time
from typing import Any

import orjson
import pika
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic


class Loop:
    def __init__(
        self, url: str, source: str, exchange: str, key: str, count: int, prefetch: int
    ) -> None:
        self.source, self.exchange, self.key = source, exchange, key
        self.count, self.prefetch = count, prefetch
        self.published = 0
        self.acked_upto = 0
        self.single: set[int] = set()
        self.first_at = 0.0
        self.done_at = 0.0
        self.nacked = 0
        self.ch: Any = None
        from bus.broker.nodes import shuffled

        params = pika.URLParameters(shuffled(url)[0])  # one node of a cluster's list
        params.client_properties = {"connection_name": "dvcbus-bench-ceiling"}
        self.conn = SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_close_callback=lambda *_: self.conn.ioloop.stop(),
        )

    def _on_open(self, conn: SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, ch: Any) -> None:
        self.ch = ch
        ch.confirm_delivery(self._on_confirm, callback=lambda _f: self._qos())

    def _qos(self) -> None:
        self.ch.basic_qos(prefetch_count=self.prefetch, callback=lambda _f: self._consume())

    def _consume(self) -> None:
        self.ch.basic_consume(self.source, self._on_message)

    def _on_message(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        if not self.first_at:
            self.first_at = time.monotonic()
        # Same shape of work on the wire as the router's copy: persistent, typed, headers.
        ch.basic_publish(
            self.exchange,
            self.key,
            body,
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=props.message_id,
                timestamp=int(time.time()),
                headers={"x-dvcbus-target": self.key},
            ),
        )
        self.published += 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if not isinstance(method, Basic.Ack):
            self.nacked += 1
        # Publish sequence n is the copy of delivery n (one channel, in order).
        if method.multiple:
            upto = method.delivery_tag
        else:
            self.single.add(method.delivery_tag)
            upto = self.acked_upto
            while upto + 1 in self.single:
                upto += 1
                self.single.discard(upto)
        if upto > self.acked_upto:
            self.ch.basic_ack(upto, multiple=True)
            self.acked_upto = upto
        if self.acked_upto >= self.count and not self.done_at:
            self.done_at = time.monotonic()
            self.conn.close()

    def run(self) -> None:
        self.conn.ioloop.start()


def main(argv: list[str]) -> int:
    url, source, exchange, key, count, prefetch = argv
    loop = Loop(url, source, exchange, key, int(count), int(prefetch))
    loop.run()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = max(loop.done_at - loop.first_at, 1e-9)
    print(
        orjson.dumps(
            {
                "messages": loop.acked_upto,
                "seconds": round(seconds, 4),
                "rate": round(loop.acked_upto / seconds, 1),
                "nacked": loop.nacked,
                "cpu_s_total": round(usage.ru_utime + usage.ru_stime, 3),
            }
        ).decode(),
        flush=True,
    )
    # Stay until the benchmark has read this process's /proc figures (it sends SIGTERM).
    signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
