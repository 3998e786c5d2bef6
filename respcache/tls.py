"""TLS with Redis's directives: contexts for the tls-port and for links a node opens itself.
(The tls-* directives themselves are in config.py with all the others.)

The TLS port runs its own accept loop and hands each socket to connect_accepted_socket, instead
of handing one context to create_server: that way a failed or stalled handshake is ours to see --
it is logged with the peer address, counted for INFO, and dropped after tls-handshake-timeout --
and every new connection takes the context current at that moment, so CONFIG SET of tls-* files
rotates certificates without touching connections that are up.
"""

from __future__ import annotations

import asyncio
import socket
import ssl


PROTOCOL_VERSIONS = {"tlsv1": ssl.TLSVersion.TLSv1, "tlsv1.1": ssl.TLSVersion.TLSv1_1,
                     "tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}

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
        # No tickets in TLS 1.2 nor 1.3. Python's ssl offers no call to turn off OpenSSL's
        # server-side session-ID cache, so a TLS 1.2 client can still resume by session ID.
        context.options |= ssl.OP_NO_TICKET
        context.num_tickets = 0
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
        if values["tls-ciphers"]:
            context.set_ciphers(values["tls-ciphers"])
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load TLS files: {exc}") from None
    context.check_hostname = False  # tiers address peers by IP; the CA is what we trust
    return context


class TLSListener:
    """The TLS port: our own accept loop hands each socket to connect_accepted_socket with the
    context current at that moment. Nothing reads the socket before the TLS layer does, a failed
    or stalled handshake raises here (logged with the peer, counted, dropped after
    tls-handshake-timeout), and rotating certificates only means replacing server.tls_context.
    """

    def __init__(self, server, sock, make_connection):
        self.server = server
        self.sock = sock
        self.make_connection = make_connection
        self.handshakes = set()   # the loop holds tasks weakly: keep them until done
        self.task = server.loop.create_task(self._accept_loop())

    async def _accept_loop(self):
        loop = self.server.loop
        while True:
            try:
                conn_sock, peer = await loop.sock_accept(self.sock)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except OSError as exc:
                self.server.log.warning("TLS accept failed: %s", exc)
                await asyncio.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            task = loop.create_task(self._handshake(conn_sock, peer))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    async def _handshake(self, conn_sock, peer):
        server = self.server
        timeout = server.config.values["tls-handshake-timeout"] / 1000
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            await asyncio.wait_for(server.loop.connect_accepted_socket(
                self.make_connection, conn_sock, ssl=server.tls_context,
                ssl_handshake_timeout=timeout), timeout + 1)
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            server.stats_tls_handshake_failures += 1
            reason = getattr(exc, "reason", None) or type(exc).__name__
            server.log.warning("Error accepting a client connection: TLS handshake with %s "
                               "failed (%s)", where, reason)
            conn_sock.close()

    def close(self):
        self.task.cancel()
        for task in list(self.handshakes):
            task.cancel()
        self.sock.close()


def listen_socket(host, port, backlog, reuse_port):
    """A bound, listening, non-blocking socket for the TLS accept loop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
