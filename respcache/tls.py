"""TLS with Redis's directives: contexts for the tls-port and for links a node opens itself.
(The tls-* directives themselves are in config.py with all the others.)

The TLS port accepts plain TCP and then upgrades with loop.start_tls, instead of handing the
context to create_server: that way a failed or stalled handshake is ours to see -- it is logged
with the peer address, counted for INFO, and dropped after tls-handshake-timeout -- and every new
connection takes the context current at that moment, so CONFIG SET of tls-* files rotates
certificates without touching connections that are up.
"""

from __future__ import annotations

import asyncio
import ssl


PROTOCOL_VERSIONS = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}

TLS_FILE_DIRECTIVES = ("tls-cert-file", "tls-key-file", "tls-key-file-pass", "tls-ca-cert-file",
                       "tls-ca-cert-dir", "tls-auth-clients", "tls-protocols", "tls-ciphers",
                       "tls-ciphersuites", "tls-prefer-server-ciphers", "tls-session-caching",
                       "tls-client-cert-file", "tls-client-key-file", "tls-client-key-file-pass")


class TLSConfigError(ValueError):
    pass


def _versions(context, text):
    chosen = sorted(PROTOCOL_VERSIONS[w] for w in text.lower().split())
    context.minimum_version, context.maximum_version = chosen[0], chosen[-1]


def _load_ca(context, values):
    if values["tls-ca-cert-file"] or values["tls-ca-cert-dir"]:
        context.load_verify_locations(cafile=values["tls-ca-cert-file"] or None,
                                      capath=values["tls-ca-cert-dir"] or None)
        return True
    return False


def server_context(values) -> ssl.SSLContext:
    """The context for the tls-port; raises TLSConfigError naming what is wrong."""
    if not values["tls-cert-file"] or not values["tls-key-file"]:
        raise TLSConfigError("tls-port needs tls-cert-file and tls-key-file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(values["tls-cert-file"], values["tls-key-file"],
                                password=values["tls-key-file-pass"] or None)
        has_ca = _load_ca(context, values)
        _versions(context, values["tls-protocols"])
        if values["tls-ciphers"]:
            context.set_ciphers(values["tls-ciphers"])
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load TLS files: {exc}") from None
    mode = values["tls-auth-clients"]
    if mode != "no" and not has_ca:
        raise TLSConfigError("tls-auth-clients needs tls-ca-cert-file or tls-ca-cert-dir")
    context.verify_mode = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL,
                           "no": ssl.CERT_NONE}[mode]
    if values["tls-prefer-server-ciphers"]:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if not values["tls-session-caching"]:
        context.options |= ssl.OP_NO_TICKET
    return context


def client_context(values) -> ssl.SSLContext:
    """For links this node opens (tier links): verify the peer, present our client cert."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if not _load_ca(context, values):
            context.load_default_certs()
        cert = values["tls-client-cert-file"] or values["tls-cert-file"]
        key = values["tls-client-key-file"] or values["tls-key-file"]
        password = values["tls-client-key-file-pass"] or values["tls-key-file-pass"] or None
        if cert and key:
            context.load_cert_chain(cert, key, password=password)
        _versions(context, values["tls-protocols"])
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load TLS files: {exc}") from None
    context.check_hostname = False  # tiers address peers by IP; the CA is what we trust
    return context


class TLSAcceptor(asyncio.Protocol):
    """Owns a fresh TCP connection on the TLS port until its handshake is done."""

    def __init__(self, server, make_connection):
        self.server = server
        self.make_connection = make_connection
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        # The ClientHello must wait in the socket until start_tls owns the transport: read
        # now, it would land here and be lost, and the handshake would stall.
        transport.pause_reading()
        self.server.loop.create_task(self._handshake())

    def data_received(self, data):
        pass  # reading is paused until start_tls takes the transport over

    def connection_lost(self, exc):
        pass

    async def _handshake(self):
        server = self.server
        conn = self.make_connection()
        timeout = server.config.values["tls-handshake-timeout"] / 1000
        try:
            tls_transport = await server.loop.start_tls(
                self.transport, conn, server.tls_context, server_side=True,
                ssl_handshake_timeout=timeout)
        except (ssl.SSLError, ConnectionError, OSError, asyncio.TimeoutError) as exc:
            server.stats_tls_handshake_failures += 1
            reason = getattr(exc, "reason", None) or type(exc).__name__
            server.log.warning("Error accepting a client connection: TLS handshake with %s "
                               "failed (%s)", self.peer, reason)
            self.transport.abort()
            return
        if tls_transport is None:
            return
        conn.connection_made(tls_transport)
