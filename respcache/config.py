"""redis.conf-style configuration: directives, parsing, CONFIG GET/SET/REWRITE support.

A file is one directive per line, `#` comments, quoting as Redis's sdssplitargs, `include other.conf`
(a relative path is taken from the including file's folder). Command-line `--name value ...` pairs
come after the file, as Redis does. Any bad line raises ConfigError naming file, line, directive and
reason; the CLI prints it in Redis's "FATAL CONFIG FILE ERROR" format and exits 1.

Other packages (tiers) add their own directives with `register()` before the config is loaded, so
this module knows nothing of them.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Callable

from .inline import split_args
from .errors import ProtocolError

VERSION = "0.1.0"
REDIS_COMPAT_VERSION = "7.0.15"


class ConfigError(Exception):
    def __init__(self, reason, file=None, line_no=None, line=None, directive=None):
        super().__init__(reason)
        self.reason, self.file, self.line_no = reason, file, line_no
        self.line, self.directive = line, directive
        self.included_from = []   # (file, line) of each include that led to self.file

    def report(self) -> str:
        if not self.file:
            where = f"Reading the command line, at argument {self.line_no}"
        elif self.line_no is None:  # the file itself could not be read: no line to name
            where = f"Reading the configuration file {self.file}"
        else:
            where = f"Reading the configuration file {self.file}, at line {self.line_no}"
        parts = ["", f"*** FATAL CONFIG FILE ERROR (respcache {VERSION}) ***", where]
        parts += [f"(included from {file}, at line {number})"
                  for file, number in self.included_from]
        if self.line is not None:
            parts.append(f">>> '{self.line}'")
        parts.append(f"directive '{self.directive}': {self.reason}" if self.directive
                     else self.reason)
        return "\n".join(parts)


# ---- value kinds: each parses text into a value and formats it back for CONFIG GET ----------
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2,
                 "g": 1000 ** 3, "gb": 1024 ** 3}


def parse_memory(text: str) -> int:
    """Redis memtoull: ASCII digits then an optional unit (any case); no sign, no spaces."""
    low = text.lower()
    digits = low.rstrip("kmgb")
    unit = low[len(digits):]
    if unit not in _MEMORY_UNITS or not (digits.isascii() and digits.isdigit()):
        raise ValueError("argument must be a memory value")
    return int(digits) * _MEMORY_UNITS[unit]


def parse_int(text: str) -> int:
    """Redis string2ll: optional '-', ASCII digits without leading zeros, int64 range.

    int() would take '1_0', ' 5' and '+100', which Redis refuses."""
    body = text[1:] if text[:1] == "-" else text
    if text != "0" and not (body.isascii() and body.isdigit() and body[0] != "0"):
        raise ValueError("argument couldn't be parsed into an integer")
    value = int(text, 10)
    if not -(2 ** 63) <= value < 2 ** 63:
        raise ValueError("argument couldn't be parsed into an integer")
    return value


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("yes", "no"):
        return low == "yes"
    raise ValueError("argument must be 'yes' or 'no'")


@dataclass
class Directive:
    name: str
    kind: str                 # int | memory | bool | enum | string | list | multi | oblimit
    default: object
    runtime: bool = True      # settable with CONFIG SET
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple = ()
    validate: Callable | None = None   # extra check on the parsed value; raises ValueError
    sensitive: bool = False
    canonical: Callable | None = None  # the parsed value as Redis stores it (CONFIG GET shows it)

    def parse(self, args: list) -> object:
        if self.kind in ("list", "multi"):
            value = list(args)
            if self.validate is not None:
                self.validate(value)
            return value
        if self.kind == "oblimit":
            return _parse_output_limits(args)
        if len(args) != 1:
            raise ValueError("wrong number of arguments")
        text = args[0]
        if self.kind == "int":
            value = parse_int(text)
        elif self.kind == "memory":
            value = parse_memory(text)
        elif self.kind == "bool":
            value = parse_bool(text)
        elif self.kind == "enum":
            value = text.lower()
            if value not in self.choices:
                raise ValueError("argument(s) must be one of the following: " +
                                 ", ".join(self.choices))
        else:
            value = text
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"argument must be between {self.minimum} and {self.maximum} inclusive")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"argument must be between {self.minimum} and {self.maximum} inclusive")
        if self.validate is not None:
            self.validate(value)
        return value if self.canonical is None else self.canonical(value)

    def format(self, value) -> str:
        if self.kind == "bool":
            return "yes" if value else "no"
        if self.kind == "list":
            return " ".join(value)
        if self.kind == "multi":
            return "\n".join(" ".join(line) for line in value)
        if self.kind == "oblimit":
            return " ".join(f"{cls} {h} {s} {secs}" for cls, (h, s, secs) in value.items())
        return str(value)


def _parse_output_limits(args):
    if len(args) % 4:
        raise ValueError("wrong number of arguments")
    limits = dict(DEFAULT_OUTPUT_LIMITS)
    for i in range(0, len(args), 4):
        cls = args[i].lower()
        if cls not in limits:
            raise ValueError("Invalid client class specified in buffer limit configuration.")
        limits[cls] = (parse_memory(args[i + 1]), parse_memory(args[i + 2]), parse_int(args[i + 3]))
    return limits


DEFAULT_OUTPUT_LIMITS = {"normal": (0, 0, 0), "replica": (256 << 20, 64 << 20, 60),
                         "pubsub": (32 << 20, 8 << 20, 60)}

DIRECTIVES: dict[str, Directive] = {}
def register(directive: Directive):
    DIRECTIVES[directive.name] = directive


class Config:
    """Parsed values (`values[name]`), where each came from, and the file for CONFIG REWRITE."""

    def __init__(self):
        self.values = {name: _copy(d.default) for name, d in DIRECTIVES.items()}
        self.file = None
        self.explicit = set()   # directives named in the file or the command line

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path=None, overrides=()):
        config = cls()
        if path is not None:
            config.file = os.path.abspath(path)
            config._read_file(config.file, depth=0)
        config._read_overrides(list(overrides))
        return config

    def _read_file(self, path, depth):
        if depth > 8:
            raise ConfigError("include nesting is deeper than 8 files (an include loop?)", path)
        try:
            with open(path, "rb") as handle:
                lines = handle.read().decode("utf-8", "replace").splitlines()
        except OSError as exc:
            raise ConfigError(f"Fatal error, can't open config file '{path}': {exc.strerror}",
                              path) from None
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                args = [a.decode("utf-8", "replace") for a in split_args(line.encode())]
            except ProtocolError:
                raise ConfigError("Unbalanced quotes in configuration line", path, number, line)
            if not args:
                continue
            name = args[0].lower()
            if name == "include":
                if len(args) != 2:
                    raise ConfigError("wrong number of arguments", path, number, line, "include")
                target = args[1] if os.path.isabs(args[1]) else os.path.join(
                    os.path.dirname(path), args[1])
                try:
                    self._read_file(target, depth + 1)
                except ConfigError as exc:
                    if exc.file == target and exc.line_no is None:
                        # The included file could not be opened: the include line is at fault.
                        raise ConfigError(exc.reason, path, number, line, "include") from None
                    exc.included_from.append((path, number))
                    raise
                continue
            self._apply(name, args[1:], path, number, line)

    def _read_overrides(self, argv):
        i = 0
        while i < len(argv):
            token = argv[i]
            if not token.startswith("--") or len(token) == 2:
                raise ConfigError(f"expected an option '--name value ...', got '{token}'",
                                  None, i + 1, token)
            name = token[2:].lower()
            args, j = [], i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                args.append(argv[j])
                j += 1
            self._apply(name, args, None, i + 1, " ".join(argv[i:j]))
            i = j

    def _apply(self, name, args, path, number, line):
        directive = DIRECTIVES.get(name)
        if directive is None:
            raise ConfigError("Bad directive or wrong number of arguments", path, number, line,
                              name)
        try:
            value = directive.parse(args)
        except ValueError as exc:
            raise ConfigError(str(exc), path, number, line, name) from None
        if directive.kind == "multi":
            value = self.values[name] + [value]
        self.values[name] = value
        self.explicit.add(name)

    # ---- runtime ------------------------------------------------------------------------------
    def get(self, pattern: str) -> list:
        """CONFIG GET: (name, text) for directives matching the glob, sensitive ones included."""
        pattern = pattern.lower()
        return [(name, d.format(self.values[name])) for name, d in sorted(DIRECTIVES.items())
                if fnmatch.fnmatchcase(name, pattern)]

    def set_many(self, pairs) -> list:
        """CONFIG SET: validate every pair first, then apply all (all or nothing, as Redis 7).

        Raises KeyError(name) for an unknown directive and ValueError((name, reason)) for a bad
        value or one that is only read at startup. Returns the names that changed.
        """
        parsed = {}
        for name, text in pairs:
            name = name.lower()
            directive = DIRECTIVES.get(name)
            if directive is None:
                raise KeyError(name)
            if not directive.runtime:
                raise ValueError(name, "can't set immutable config")
            args = split_args(text.encode()) if directive.kind in ("list", "oblimit") else [text]
            args = [a.decode() if isinstance(a, bytes) else a for a in args]
            try:
                parsed[name] = directive.parse(args)
            except ValueError as exc:
                raise ValueError(name, str(exc)) from None
        for name, value in parsed.items():
            self.values[name] = value
            self.explicit.add(name)
        return list(parsed)

    def auth_required(self) -> bool:
        return bool(self.values["requirepass"])

    def rewrite(self):
        """CONFIG REWRITE: keep the file's comments and order; change only what differs."""
        if self.file is None:
            raise FileNotFoundError("no config file")
        with open(self.file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        written = set()
        out = []
        for raw in lines:
            stripped = raw.strip()
            name = stripped.split(None, 1)[0].lower() if stripped and not stripped.startswith(
                "#") else None
            if name in DIRECTIVES and name not in ("include",):
                if name in written:
                    continue  # a directive repeated in the file collapses into its first place
                written.add(name)
                out.append(self.line_for(name))
            else:
                out.append(raw)
        marker = "# Generated by CONFIG REWRITE"
        missing = [n for n in sorted(self.explicit) if n not in written and n in DIRECTIVES]
        if missing:
            if marker not in out:
                out.append(marker)
            out.extend(self.line_for(n) for n in missing)
        tmp = self.file + ".tmp-rewrite"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("\n".join(out) + "\n")
        os.replace(tmp, self.file)

    def line_for(self, name) -> str:
        directive = DIRECTIVES[name]
        value = self.values[name]
        if directive.kind == "oblimit":
            return "\n".join(f"{name} {cls} {h} {s} {secs}" for cls, (h, s, secs) in value.items())
        text = directive.format(value)
        if directive.kind == "list":
            return f"{name} {text}"
        return f"{name} {_quote(text)}"


def _quote(text: str) -> str:
    if text and all(ch.isalnum() or ch in "-_./:@,*?[]" for ch in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _copy(value):
    if isinstance(value, (list, dict)):
        return type(value)(value)
    return value


# The server's own directives register themselves (tiers add theirs through register()).
from . import directives  # noqa: E402,F401
