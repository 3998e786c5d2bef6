"""ACL users in Redis's syntax: `user <name> on >password ~pattern &channel +@category -command ...`.

Supported rules: on off, >pass <pass #sha256 !sha256 nopass resetpass, ~pattern allkeys resetkeys,
&pattern allchannels resetchannels, +cmd -cmd +cmd|sub +@category -@category allcommands
nocommands, sanitize-payload skip-sanitize-payload, reset. Categories follow Redis's names and
come from each command's flags and family (@read @write @fast @slow @admin @dangerous @keyspace
@string @hash @pubsub @transaction @connection); Redis's other category names (@list, @set, ...)
are accepted and hold no command here. A command in the server family is @admin and @dangerous:
the tiers' RESPCACHE namespace is registered there, so a user needs +@admin (or +respcache) to
run tier commands.

As in Redis 7.0: a `user default ...` line resets the default user first (so `requirepass` given as
well leaves no second password), `requirepass` is the default user's password (CONFIG SET
requirepass does resetpass then >new, or nopass when empty), and a new user starts with
resetchannels unless `acl-pubsub-default allchannels`. Channels are checked for PUBLISH, SUBSCRIBE
(glob match against the user's &patterns) and PSUBSCRIBE (the pattern must be one of them,
literally).

A user whose rules allow every command, key and channel gets `acl_user = None` on its connections:
the hot path then pays one attribute test.
"""

from __future__ import annotations

import hashlib
import hmac

from .acl_log import AclLog
from .commands.registry import unique_commands
from .glob import glob_match

_DANGEROUS = {"flushdb", "flushall", "keys", "config", "shutdown", "debug", "monitor",
              "client", "slowlog", "info", "save", "bgsave", "lastsave", "sort", "migrate",
              "restore", "acl", "respcache"}
_GROUP_CATEGORY = {"generic": "keyspace", "string": "string", "hash": "hash",
                   "pubsub": "pubsub", "transactions": "transaction",
                   "connection": "connection", "server": "admin"}
# Every category Redis 7.0 knows, in the order ACL CAT lists them.
CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
              "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking",
              "dangerous", "connection", "transaction", "scripting")
# Commands whose arguments are channels: name -> (first arg, last arg or None for all, literal).
# `literal`: PSUBSCRIBE's patterns must equal an allowed pattern; the others glob-match.
CHANNEL_ARGS = {"publish": (1, 1, False), "subscribe": (1, None, False),
                "psubscribe": (1, None, True)}


class RuleError(ValueError):
    """A rule that cannot apply. str() is the detail for config errors; `kind` picks Redis's
    ACL SETUSER wording (errors.ACL_RULE_REASONS); `rule` is the rule as given."""

    def __init__(self, kind: str, rule: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.rule = rule


def categories_of(cmd) -> set:
    cats = {"all"}
    group = cmd.group
    cats.add(_GROUP_CATEGORY.get(group, group))
    flags = cmd.flags
    if "write" in flags:
        cats.add("write")
    if "readonly" in flags:
        cats.add("read")
    cats.add("fast" if "fast" in flags else "slow")
    if "admin" in flags:
        cats.update(("admin", "dangerous"))
    if cmd.name in _DANGEROUS:
        cats.add("dangerous")
    return cats


def all_names() -> dict:
    """full name -> categories, for every command and subcommand."""
    from .commands import load_all
    load_all()  # the config may be read before the server imported the command families
    names = {}
    for cmd in unique_commands():
        names[cmd.name] = categories_of(cmd)
        for sub in cmd.subcommands.values():
            names[f"{cmd.name}|{sub.name}"] = categories_of(cmd) | categories_of(sub)
    return names


def _raw(text: str) -> bytes:
    # SETUSER arguments are decoded with surrogateescape: patterns and passwords keep their bytes.
    return text.encode("utf-8", "surrogateescape")


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class User:
    def __init__(self, name: str, all_channels: bool = False):
        self.name = name
        self.enabled = False
        self.nopass = False
        self.sanitize_payload = False   # shown as Redis shows it; nothing here restores payloads
        self.skip_sanitize_payload = False
        self.password_hashes = []       # hex digests, in the order they were added
        self.key_patterns = []          # bytes
        self.all_keys = False
        self.channel_patterns = []      # bytes
        self.all_channels = all_channels
        self.allowed = set()            # full command names
        self.all_commands = False
        self.future_commands = False    # +@all (or allcommands) was the last reset of commands
        self.command_rules = []         # the +@/-@ category rules since then, in order

    def clone(self) -> "User":
        copy = User.__new__(User)
        copy.__dict__.update(self.__dict__)
        for attr in ("password_hashes", "key_patterns", "channel_patterns", "command_rules"):
            setattr(copy, attr, list(getattr(self, attr)))
        copy.allowed = set(self.allowed)
        return copy

    def apply(self, rule: str, names: dict, pubsub_default_all: bool = False):
        low = rule.lower()
        if low == "on":
            self.enabled = True
        elif low == "off":
            self.enabled = False
        elif low == "nopass":
            self.nopass = True
            self.password_hashes.clear()
        elif low == "resetpass":
            self.nopass = False
            self.password_hashes.clear()
        elif low == "sanitize-payload":
            self.sanitize_payload, self.skip_sanitize_payload = True, False
        elif low == "skip-sanitize-payload":
            self.sanitize_payload, self.skip_sanitize_payload = False, True
        elif rule.startswith(">"):
            self._add_hash(_sha(_raw(rule[1:])))
        elif rule.startswith("<"):
            self._remove_hash(_sha(_raw(rule[1:])), rule)
        elif rule.startswith("#"):
            if not _is_hash(rule[1:]):
                raise RuleError("bad-hash", rule, "The password hash must be exactly 64 "
                                f"lowercase hexadecimal characters: '{rule}'")
            self._add_hash(rule[1:])
        elif rule.startswith("!"):
            if not _is_hash(rule[1:]):
                raise RuleError("bad-hash", rule, "The password hash must be exactly 64 "
                                f"lowercase hexadecimal characters: '{rule}'")
            self._remove_hash(rule[1:], rule)
        elif rule.startswith("~"):
            if self.all_keys:
                raise RuleError("keys-after-all", rule, f"'{rule}' after allkeys has no effect")
            if rule == "~*":
                self.all_keys, self.key_patterns = True, []
            elif _raw(rule[1:]) not in self.key_patterns:
                self.key_patterns.append(_raw(rule[1:]))
        elif low == "allkeys":
            self.all_keys, self.key_patterns = True, []
        elif low == "resetkeys":
            self.all_keys, self.key_patterns = False, []
        elif rule.startswith("&"):
            if self.all_channels:
                raise RuleError("channels-after-all", rule,
                                f"'{rule}' after allchannels has no effect")
            if rule == "&*":
                self.all_channels, self.channel_patterns = True, []
            elif _raw(rule[1:]) not in self.channel_patterns:
                self.channel_patterns.append(_raw(rule[1:]))
        elif low == "allchannels":
            self.all_channels, self.channel_patterns = True, []
        elif low == "resetchannels":
            self.all_channels, self.channel_patterns = False, []
        elif low in ("allcommands", "+@all"):
            self.allowed = set(names)
            self.future_commands, self.command_rules = True, []
        elif low in ("nocommands", "-@all"):
            self.allowed = set()
            self.future_commands, self.command_rules = False, []
        elif rule.startswith(("+@", "-@")):
            category = low[2:]
            if category not in CATEGORIES:
                raise RuleError("unknown", rule, f"Unknown command category '{category}'")
            members = {n for n, cats in names.items() if category in cats}
            self.allowed = self.allowed | members if rule[0] == "+" else self.allowed - members
            self._note_category(low)
        elif rule.startswith(("+", "-")) and len(rule) > 1:
            name = low[1:]
            if name not in names:
                raise RuleError("unknown", rule, f"Unknown command '{name}'")
            members = {name} | {n for n in names if n.startswith(name + "|")}
            self.allowed = self.allowed | members if rule[0] == "+" else self.allowed - members
        elif low == "reset":
            self.__init__(self.name, pubsub_default_all)
            self.sanitize_payload = True
        else:
            raise RuleError("syntax", rule, f"Syntax error in ACL rule '{rule}'")
        self.all_commands = self.allowed >= names.keys()

    def _add_hash(self, digest: str):
        if digest not in self.password_hashes:
            self.password_hashes.append(digest)
        self.nopass = False

    def _remove_hash(self, digest: str, rule: str):
        if digest not in self.password_hashes:
            raise RuleError("no-such-password", rule, f"'{rule}': the user has no such password")
        self.password_hashes.remove(digest)

    def _note_category(self, rule: str):
        """Category rules are kept in order, a repeated one replacing the earlier (Redis 7.0);
        single commands are derived from what they change (commands_text)."""
        self.command_rules = [r for r in self.command_rules if r[1:] != rule[1:]]
        self.command_rules.append(rule)

    # ---- checks -----------------------------------------------------------------------------
    def unrestricted(self) -> bool:
        return self.all_commands and self.all_keys and self.all_channels

    def check_password(self, password: bytes) -> bool:
        if self.nopass:
            return True
        digest = _sha(password)
        return any(hmac.compare_digest(digest, h) for h in self.password_hashes)

    def may_run(self, cmd, args) -> bool:
        if cmd.subcommands and len(args) > 1:
            return f"{cmd.name}|{args[1].lower().decode('utf-8', 'replace')}" in self.allowed
        return cmd.name in self.allowed

    def may_access(self, key: bytes) -> bool:
        return self.all_keys or any(glob_match(p, key) for p in self.key_patterns)

    def may_use_channel(self, channel: bytes, literal: bool) -> bool:
        if self.all_channels:
            return True
        if literal:
            return channel in self.channel_patterns
        return any(glob_match(p, channel) for p in self.channel_patterns)

    def denied_channel(self, cmd, args):
        """The first channel argument this user may not use, or None."""
        spec = CHANNEL_ARGS.get(cmd.name)
        if spec is None or self.all_channels:
            return None
        first, last, literal = spec
        for channel in args[first:None if last is None else last + 1]:
            if not self.may_use_channel(channel, literal):
                return channel
        return None

    # ---- as Redis describes it ----------------------------------------------------------------
    def flags(self) -> list:
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.skip_sanitize_payload:
            out.append("skip-sanitize-payload")
        if self.sanitize_payload:
            out.append("sanitize-payload")
        return out

    def keys_text(self) -> str:
        if self.all_keys:
            return "~*"
        return " ".join("~" + p.decode("utf-8", "surrogateescape") for p in self.key_patterns)

    def channels_text(self) -> str:
        """GETUSER's `channels`: "&*", or the patterns ("" when there are none)."""
        if self.all_channels:
            return "&*"
        return " ".join("&" + p.decode("utf-8", "surrogateescape")
                        for p in self.channel_patterns)

    def commands_text(self, names: dict) -> str:
        """As Redis 7.0 describes commands: +@all or -@all, the category rules in order, then
        each command (or subcommand) whose permission they do not explain."""
        rules = ["+@all" if self.future_commands else "-@all"] + self.command_rules
        implied = set(names) if self.future_commands else set()
        for rule in self.command_rules:
            members = {n for n, cats in names.items() if rule[2:] in cats}
            implied = implied | members if rule[0] == "+" else implied - members
        for name in names:
            if "|" in name:
                continue
            if (name in self.allowed) != (name in implied):
                family = {name} | {n for n in names if n.startswith(name + "|")}
                rules.append(("+" if name in self.allowed else "-") + name)
                implied = implied | family if name in self.allowed else implied - family
            for sub in (n for n in names if n.startswith(name + "|")):
                if (sub in self.allowed) != (sub in implied):
                    rules.append(("+" if sub in self.allowed else "-") + sub)
        return " ".join(rules)

    def describe(self, names: dict) -> str:
        """ACL LIST's line (without the leading `user <name>`), as Redis's ACLDescribeUser."""
        parts = self.flags() + ["#" + h for h in self.password_hashes]
        if self.keys_text():
            parts.append(self.keys_text())
        parts.append("&*" if self.all_channels else " ".join(
            ["resetchannels"] + ["&" + p.decode("utf-8", "surrogateescape")
                                 for p in self.channel_patterns]))
        parts.append(self.commands_text(names))
        return " ".join(parts)


class AclTable:
    def __init__(self, values):
        self.names = all_names()
        self.pubsub_default_all = values.get("acl-pubsub-default",
                                             "resetchannels") == "allchannels"
        default = User("default")
        for rule in ("on", "nopass", "allcommands", "allkeys", "allchannels"):
            default.apply(rule, self.names)
        self.users = {"default": default}
        self.log = AclLog()
        self.set_default_password(values["requirepass"])
        for args in values["user"]:
            name = args[0]
            user = self.users.get(name)
            if user is None:
                user = self.users[name] = self.new_user(name)
            elif name == "default":
                # Redis loads `user default ...` over a reset default user: requirepass is gone.
                user.apply("reset", self.names, self.pubsub_default_all)
            for rule in args[1:]:
                user.apply(rule, self.names, self.pubsub_default_all)

    def new_user(self, name: str) -> User:
        return User(name, all_channels=self.pubsub_default_all)

    def set_default_password(self, password: str):
        """requirepass: resetpass then >password, or nopass when empty (as Redis 7.0 does)."""
        default = self.users["default"]
        default.apply("resetpass", self.names)
        default.apply(">" + password if password else "nopass", self.names)

    def set_user(self, name: str, rules) -> User:
        """ACL SETUSER: every rule applies, or none (RuleError) and the user is as it was.

        An existing user is changed in place, so connections that hold it see the change."""
        user = self.users.get(name)
        changed = user.clone() if user is not None else self.new_user(name)
        for rule in rules:
            changed.apply(rule, self.names, self.pubsub_default_all)
        if user is None:
            self.users[name] = changed
            return changed
        user.__dict__.update(changed.__dict__)
        return user

    def delete_users(self, names) -> list:
        """ACL DELUSER (the caller refuses "default"): the names that existed."""
        return [name for name in dict.fromkeys(names) if self.users.pop(name, None) is not None]

    def default_needs_auth(self) -> bool:
        default = self.users["default"]
        return not (default.enabled and default.nopass)

    def authenticate(self, username: str, password: bytes):
        user = self.users.get(username)
        if user is None or not user.enabled or not user.check_password(password):
            return None
        return user


def validate_user_lines(lines):
    """Config-time check: raises ValueError with the reason for the first bad `user` line."""
    names = all_names()
    for args in lines:
        if not args:
            raise ValueError("user needs a name")
        user = User(args[0])
        for rule in args[1:]:
            user.apply(rule, names)


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
