"""The server and the clients: bytes on sockets, nothing about calls.

The embedded HTTP/WebSocket server (h11, wsproto) and its dashboard
endpoints; the outgoing HTTP and WebSocket clients; the carrier REST sender;
the guard that watches every WebSocket's timeouts from one task; on
asyncio, a byte stream and a lock of our own for the hot path. WebSocket
data frames are read and built by ``patter_core.http`` (pure).
"""
