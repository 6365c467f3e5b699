"""Python's `websockets` client against an echo server of the transport.

Run with `/usr/bin/python3 tests/clients/websockets_client.py URL [CA_FILE]`;
prints what it saw as JSON.
"""
import asyncio
import json
import ssl
import sys

import websockets


async def main(url, ca_file):
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    seen = {}
    async with websockets.connect(url, ssl=context, max_size=None) as socket:
        await socket.send("hello from python")
        seen["text"] = await socket.recv()
        await socket.send(b"\x01\x02\x03")
        seen["binary"] = list(await socket.recv())
        # An iterable is sent as one fragmented message, one frame per item.
        await socket.send(["frag", "men", "ted"])
        seen["fragmented"] = await socket.recv()
        pong = await socket.ping(b"py")
        await asyncio.wait_for(pong, 5)
        seen["pong"] = True
        await socket.close(4003, "python done")
        seen["close"] = [socket.close_code, socket.close_reason]
    async with websockets.connect(url, ssl=context, max_size=None) as socket:
        # Over the server's max_message_bytes (1 MiB in the test): refused with 1009.
        try:
            await socket.send(b"x" * (2 * 1024 * 1024))
            await socket.recv()
        except websockets.ConnectionClosed as closed:
            seen["too_big"] = [closed.rcvd.code if closed.rcvd else None]
    print(json.dumps(seen))


asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
