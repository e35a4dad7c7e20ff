"""The PostgreSQL wire protocol by hand, for tests that must say what a driver cannot
(raw startup packets, what arrives unsolicited, what follows a FATAL)."""
import struct


def startup_packet(user, minor=0, extra=()):
    body = b""
    for k, v in (("user", user), ("database", "postgres"), *extra):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!II", 8 + len(body), (3 << 16) | minor) + body


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError(f"connection closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def recv_msg(s):
    hdr = recv_exact(s, 5)
    (length,) = struct.unpack("!I", hdr[1:])
    return hdr[:1], recv_exact(s, length - 4)


def query_msg(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", 4 + len(body)) + body


def read_until_ready(s):
    msgs = []
    while True:
        t, body = recv_msg(s)
        msgs.append((t, body))
        if t == b"Z":
            return msgs
