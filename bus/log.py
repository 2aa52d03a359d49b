"""Logging: structlog processors in one chain, JSON lines for machines, console for people."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from bus.observability.masking import LOG_MASKER, MaskingFormatter


def configure(level: str = "INFO", fmt: str = "auto", *, process: str | None = None) -> None:
    """Configure structlog once per process.

    ``fmt`` is ``json``, ``console`` or ``auto`` (console when stderr is a terminal).
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        processors.append(_static("process", process))
    processors.append(structlog.processors.format_exc_info)
    processors.append(LOG_MASKER)  # last before rendering: sees exception text too
    if use_console:
        processors.append(structlog.dev.ConsoleRenderer())
        logger_factory: structlog.types.WrappedLogger = structlog.PrintLoggerFactory(sys.stderr)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        logger_factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(MaskingFormatter(LOG_MASKER, logging.BASIC_FORMAT))
    logging.getLogger("pika").setLevel(logging.CRITICAL if level != "DEBUG" else logging.INFO)


def _static(key: str, value: str) -> structlog.types.Processor:
    def add(_logger: object, _name: str, event: dict) -> dict:
        event[key] = value
        return event

    return add
