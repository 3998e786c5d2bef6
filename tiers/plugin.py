"""Entry point (`respcache.extensions`: tiers = "tiers.plugin:create").

Importing this module registers the tier directives and the RESPCACHE commands; respcache's CLI
imports it before reading the config. `create(config)` returns the object for the configured role.
"""

from __future__ import annotations

from respcache.config import Directive, register

from . import commands  # noqa: F401  (registers RESPCACHE ...)
from .link import parse_address


def _check_addresses(values):
    for value in values:
        try:
            parse_address(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None


for _directive in (
    # edge and relief: the relay(s) downstream ("host:port ..."); CONFIG SET takes effect live.
    Directive("relay", "list", [], validate=_check_addresses),
    # relay: how many relief nodes hold each object.
    Directive("replicas", "int", 2, minimum=1, maximum=16),
    Directive("hash-vnodes", "int", 160, runtime=False, minimum=1, maximum=4096),
    Directive("hash-seed", "int", 0, runtime=False, minimum=0, maximum=2 ** 31 - 1),
    Directive("relief-kind", "enum", "aging", runtime=False, choices=("aging", "expansion")),
    # aging: idle objects live at most this long past their last arrival/read (0 = until expiry).
    Directive("relief-decay-ms", "int", 0, minimum=0, maximum=2 ** 40),
    # expansion: objects move on to the aging nodes this long after they arrived (0 = never).
    Directive("relief-hold-ms", "int", 30000, minimum=0, maximum=2 ** 40),
    # relief: the address announced to relays (default: the first specific `bind` address).
    Directive("relief-announce-ip", "string", "", runtime=False),
    # how long a command waits for a fetch downstream before it answers as a miss (ms).
    Directive("downstream-timeout", "int", 100, minimum=1, maximum=60000),
    # edge: records buffered for downstream (beyond: dropped and counted), and per RESPCACHE PUSH.
    Directive("downstream-queue-size", "int", 100000, minimum=1, maximum=2 ** 31 - 1),
    Directive("downstream-batch", "int", 256, minimum=1, maximum=65536),
    Directive("downstream-auth", "string", "", sensitive=True),
    # Links to other tiers over TLS (mutual when tls-client-cert-file / tls-cert-file is set);
    # `relay host:port` then names the relay's tls-port, and relief nodes announce theirs.
    Directive("tls-downstream", "bool", False, runtime=False),
    # edge: pull objects other edges wrote as soon as the relay announces them.
    Directive("edge-prefetch", "bool", False),
):
    register(_directive)


def create(config):
    role = config.values["role"]
    if role == "relay":
        from .relay import Relay
        return Relay(config)
    if role == "relief":
        from .relief import Relief
        return Relief(config)
    from .edge import Edge
    return Edge(config)
