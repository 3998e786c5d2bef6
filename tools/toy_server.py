"""The Python ceiling: a minimal uvloop + hiredis GET/SET server over a dict.

Used by bench_server.py as the reference for what an asyncio Python RESP server can do on this box;
respcache must stay close to it. Not a product: no options, no errors beyond the minimum.
"""

import asyncio
import sys

import hiredis

try:
    import uvloop
except ImportError:  # the benchmark then measures plain asyncio for both
    uvloop = None

STORE = {}


class ToyProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.reader = hiredis.Reader()

    def data_received(self, data):
        self.reader.feed(data)
        out = []
        while True:
            req = self.reader.gets()
            if req is False:
                break
            name = req[0].upper()
            if name == b"GET":
                value = STORE.get(req[1])
                out.append(b"$-1\r\n" if value is None else b"$%d\r\n%b\r\n" % (len(value), value))
            elif name == b"SET":
                STORE[req[1]] = req[2]
                out.append(b"+OK\r\n")
            elif name == b"PING":
                out.append(b"+PONG\r\n")
            elif name == b"CONFIG":
                out.append(b"*0\r\n")
            else:
                out.append(b"-ERR unknown command\r\n")
        if out:
            self.transport.write(b"".join(out))


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(ToyProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
