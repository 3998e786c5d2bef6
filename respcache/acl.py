"""ACL users in Redis's syntax: `user <name> on >password ~pattern +@category -command ...`.

Supported rules: on off, >pass <pass #sha256 !sha256 nopass resetpass, ~pattern allkeys resetkeys,
&pattern allchannels resetchannels (accepted; channels are not restricted), +cmd -cmd +cmd|sub
+@category -@category allcommands nocommands, reset. Categories follow Redis's names and come from
each command's flags and family (@read @write @fast @slow @admin @dangerous @keyspace @string
@hash @pubsub @transaction @connection). A command in the server family is @admin and
@dangerous: the tiers' RESPCACHE namespace is registered there, so a user needs +@admin (or
+respcache) to run tier commands.

`requirepass` is the default user's password, as in Redis; a `user default ...` line wins over it.
A user whose rules allow everything gets `acl = None` on its connections: the hot path then pays
one attribute test.
"""

from __future__ import annotations

import hashlib
import hmac

from .commands.registry import unique_commands
from .glob import glob_match

_DANGEROUS = {"flushdb", "flushall", "keys", "config", "shutdown", "debug", "monitor",
              "client", "slowlog", "info", "save", "bgsave", "lastsave", "sort", "migrate",
              "restore", "acl", "respcache"}
_GROUP_CATEGORY = {"generic": "keyspace", "string": "string", "hash": "hash",
                   "pubsub": "pubsub", "transactions": "transaction",
                   "connection": "connection", "server": "admin"}


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


def _all_names() -> dict:
    """full name -> categories, for every command and subcommand."""
    from .commands import load_all
    load_all()  # the config may be read before the server imported the command families
    names = {}
    for cmd in unique_commands():
        names[cmd.name] = categories_of(cmd)
        for sub in cmd.subcommands.values():
            names[f"{cmd.name}|{sub.name}"] = categories_of(cmd) | categories_of(sub)
    return names


class User:
    def __init__(self, name: str):
        self.name = name
        self.enabled = False
        self.nopass = False
        self.password_hashes = set()
        self.key_patterns = []
        self.all_keys = False
        self.allowed = set()   # full command names
        self.all_commands = False

    def apply(self, rule: str, names: dict):
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
        elif rule.startswith(">"):
            self.password_hashes.add(_sha(rule[1:].encode()))
            self.nopass = False
        elif rule.startswith("<"):
            self.password_hashes.discard(_sha(rule[1:].encode()))
        elif rule.startswith("#"):
            if len(rule) != 65:
                raise ValueError(f"The password hash must be exactly 64 characters: '{rule}'")
            self.password_hashes.add(rule[1:].lower())
        elif rule.startswith("!"):
            self.password_hashes.discard(rule[1:].lower())
        elif rule.startswith("~"):
            self.key_patterns.append(rule[1:].encode())
            self.all_keys = self.all_keys or rule == "~*"
        elif low == "allkeys":
            self.all_keys = True
            self.key_patterns = [b"*"]
        elif low == "resetkeys":
            self.all_keys = False
            self.key_patterns = []
        elif rule.startswith("&") or low in ("allchannels", "resetchannels"):
            pass  # channel rules are accepted; channels are not restricted
        elif low in ("allcommands", "+@all"):
            self.allowed = set(names)
        elif low in ("nocommands", "-@all"):
            self.allowed = set()
        elif rule.startswith(("+@", "-@")):
            category = low[2:]
            members = {n for n, cats in names.items() if category in cats}
            if not members:
                raise ValueError(f"Unknown command category '{category}'")
            self.allowed = self.allowed | members if rule[0] == "+" else self.allowed - members
        elif rule.startswith(("+", "-")):
            name = low[1:]
            if name not in names:
                raise ValueError(f"Unknown command '{name}'")
            members = {name} | {n for n in names if n.startswith(name + "|")}
            self.allowed = self.allowed | members if rule[0] == "+" else self.allowed - members
        elif low == "reset":
            self.__init__(self.name)
        else:
            raise ValueError(f"Syntax error in ACL rule '{rule}'")
        self.all_commands = self.allowed >= set(names)

    def unrestricted(self) -> bool:
        return self.all_commands and self.all_keys

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


class AclTable:
    def __init__(self, values):
        names = _all_names()
        default = User("default")
        for rule in ("on", "nopass", "allcommands", "allkeys"):
            default.apply(rule, names)
        if values["requirepass"]:
            default.apply("resetpass", names)
            default.apply(">" + values["requirepass"], names)
        self.users = {"default": default}
        for args in values["user"]:
            name = args[0]
            user = self.users.get(name) or User(name)
            for rule in args[1:]:
                user.apply(rule, names)
            self.users[name] = user

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
    names = _all_names()
    for args in lines:
        if not args:
            raise ValueError("user needs a name")
        user = User(args[0])
        for rule in args[1:]:
            user.apply(rule, names)


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
