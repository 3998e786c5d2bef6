"""Channel and pattern subscriptions of this process's connections, and message delivery.

Messages are encoded once per protocol version and written to each subscriber's transport; a
subscriber whose unread output passes the pubsub output limit is disconnected (Connection.send),
so a slow reader can never make the server grow without bound.
"""

from . import resp
from .glob import glob_match

_MESSAGE = resp.bulk(b"message")
_PMESSAGE = resp.bulk(b"pmessage")


class PubSub:
    def __init__(self):
        self.channels = {}   # channel -> set of connections
        self.patterns = {}   # pattern -> set of connections
        # Called as listener(b"channel"|b"pattern", name, +1|-1): other workers keep counts.
        self.listener = None

    def subscribe(self, conn, channel) -> bool:
        if channel in conn.channels:
            return False
        conn.channels[channel] = None
        self.channels.setdefault(channel, set()).add(conn)
        if self.listener is not None:
            self.listener(b"channel", channel, 1)
        return True

    def unsubscribe(self, conn, channel) -> bool:
        if channel not in conn.channels:
            return False
        del conn.channels[channel]
        subscribers = self.channels.get(channel)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self.channels[channel]
        if self.listener is not None:
            self.listener(b"channel", channel, -1)
        return True

    def psubscribe(self, conn, pattern) -> bool:
        if pattern in conn.patterns:
            return False
        conn.patterns[pattern] = None
        self.patterns.setdefault(pattern, set()).add(conn)
        if self.listener is not None:
            self.listener(b"pattern", pattern, 1)
        return True

    def punsubscribe(self, conn, pattern) -> bool:
        if pattern not in conn.patterns:
            return False
        del conn.patterns[pattern]
        subscribers = self.patterns.get(pattern)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self.patterns[pattern]
        if self.listener is not None:
            self.listener(b"pattern", pattern, -1)
        return True

    def drop(self, conn):
        for channel in list(conn.channels):
            self.unsubscribe(conn, channel)
        for pattern in list(conn.patterns):
            self.punsubscribe(conn, pattern)

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver to local subscribers; returns how many received it."""
        delivered = 0
        encoded = {}
        subscribers = self.channels.get(channel)
        if subscribers:
            tail = resp.bulk(channel) + resp.bulk(message)
            for conn in list(subscribers):
                data = encoded.get(conn.proto)
                if data is None:
                    data = encoded[conn.proto] = (b">3\r\n" if conn.proto == 3 else b"*3\r\n") + \
                        _MESSAGE + tail
                conn.send(data)
                delivered += 1
        if self.patterns:
            for pattern, conns in list(self.patterns.items()):
                if not glob_match(pattern, channel):
                    continue
                body = _PMESSAGE + resp.bulk(pattern) + resp.bulk(channel) + resp.bulk(message)
                for conn in list(conns):
                    conn.send((b">4\r\n" if conn.proto == 3 else b"*4\r\n") + body)
                    delivered += 1
        return delivered

    def numsub(self, channel) -> int:
        return len(self.channels.get(channel, ()))
