"""senders.yaml read as plain data with the line of every key, duplicate keys refused.

The registry is small and flat, so it needs less than routes.yaml's loader: positions for
problems, one refusal of duplicate keys (YAML would keep the last silently), no merge keys.
Scalars under ``agencies``, ``sources`` and ``types`` stay text as written (``000.00.00.H26``
is never read as a number).
"""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]
_TEXT_LISTS = frozenset({"agencies", "sources", "types", "bearer", "subject", "fingerprint"})


class YamlProblem(Exception):
    """The file is not YAML we can read; ``line`` is 1-based (0 when unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class PositionedData:
    """The file's data and where each key and value is written."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}
        self.duplicates: list[tuple[int, Path_, str]] = []

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest written ancestor (1 when none is)."""
        for depth in range(len(path), -1, -1):
            line = self.lines.get(path[:depth])
            if line is not None:
                return line
        return 1

    def parse(self, raw: bytes) -> Any:
        try:
            root = yaml.compose(raw, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            # the parser's own words only: a quoted source line could hold a pasted token
            raise YamlProblem(
                mark.line + 1 if mark else 0, f"not valid YAML: {exc.problem}"
            ) from None
        except yaml.YAMLError as exc:
            raise YamlProblem(0, f"not valid YAML: {type(exc).__name__}") from None
        if root is None:
            raise YamlProblem(1, "the file is empty; it should start with `version: 1`")
        return self._build(root, ())

    def _build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlProblem(key_node.start_mark.line + 1, "merge keys (<<) are refused")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlProblem(key_node.start_mark.line + 1, "a key must be a plain word")
                key = key_node.value
                if key in out:
                    self.duplicates.append((key_node.start_mark.line + 1, path, key))
                    continue
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self._build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if _is_text(path) and node.tag != "tag:yaml.org,2002:null":
            return node.value
        return yaml.SafeLoader("").construct_object(node)


def _is_text(path: Path_) -> bool:
    names = [p for p in path if isinstance(p, str)]
    return bool(names) and names[-1] in _TEXT_LISTS
