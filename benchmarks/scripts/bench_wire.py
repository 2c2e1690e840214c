"""WebSocket wire format for the benchmark server and the raw-socket client.

Standard library only, because every interpreter the runner starts (the
project's and the peers' virtualenv) imports it. Frames are never
fragmented and never compressed here: the server offers no extension.
"""

import base64
import hashlib
import os
import socket

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# RFC 6455 section 1.3: the GUID that the server appends to the key.
HANDSHAKE_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# A close frame with status 1000 (normal closure) and no reason.
CLOSE_NORMAL = b"\x03\xe8"

# Text payloads mix ASCII with 2- and 3-byte UTF-8 sequences, so a client
# that validates UTF-8 cannot stay on a pure-ASCII fast path.
TEXT_UNIT = "lomond benchmark payload: caf\u00e9, \u00fcber, \u2192 done. "


def encode_frame(opcode, payload, mask=None):
    """Encode one final frame, masked with the 4-byte `mask` if given."""
    length = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    header = bytearray([0x80 | opcode])
    if length < 126:
        header.append(mask_bit | length)
    elif length < 0x10000:
        header.append(mask_bit | 126)
        header += length.to_bytes(2, "big")
    else:
        header.append(mask_bit | 127)
        header += length.to_bytes(8, "big")
    if mask is None:
        return bytes(header) + bytes(payload)
    return bytes(header) + mask + apply_mask(mask, payload)


def apply_mask(mask, data):
    """XOR `data` with the repeated 4-byte `mask` (RFC 6455 section 5.3)."""
    length = len(data)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(length, "little")


def parse_header(buf, start, end):
    """Parse the frame header at buf[start:end].

    Return (opcode, header_length, payload_length, mask), where mask is
    None for an unmasked frame, or None when the header is incomplete.
    """
    available = end - start
    if available < 2:
        return None
    opcode = buf[start] & 0x0F
    second = buf[start + 1]
    length = second & 0x7F
    header_length = 2
    if length == 126:
        header_length = 4
        if available < 4:
            return None
        length = int.from_bytes(buf[start + 2:start + 4], "big")
    elif length == 127:
        header_length = 10
        if available < 10:
            return None
        length = int.from_bytes(buf[start + 2:start + 10], "big")
    mask = None
    if second & 0x80:
        if available < header_length + 4:
            return None
        mask = bytes(buf[start + header_length:start + header_length + 4])
        header_length += 4
    return opcode, header_length, length, mask


def make_payload(size, text):
    """Build a payload of exactly `size` bytes: UTF-8 text or binary."""
    if not text:
        pattern = bytes(range(256))
        return (pattern * (size // 256 + 1))[:size]
    unit = TEXT_UNIT.encode("utf-8")
    data = (unit * (size // len(unit) + 1))[:size]
    # The cut may split a multi-byte character: drop it and pad with ASCII.
    data = data.decode("utf-8", "ignore").encode("utf-8")
    return data + b" " * (size - len(data))


def accept_key(key):
    """Compute Sec-WebSocket-Accept for the request's Sec-WebSocket-Key."""
    digest = hashlib.sha1(key.encode("ascii") + HANDSHAKE_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def client_handshake(sock, host, port, path):
    """Send an opening handshake on a blocking socket and check the reply.

    Return the bytes that arrived after the response headers.
    """
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = (
        "GET %s HTTP/1.1\r\n"
        "Host: %s:%d\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n" % (path, host, port, key)
    )
    sock.sendall(request.encode("ascii"))
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed the connection during the handshake")
        response += chunk
    head, _, rest = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status_line + b" ":
        raise ConnectionError("handshake rejected: %r" % status_line)
    if accept_key(key).encode("ascii") not in head:
        raise ConnectionError("handshake response has a wrong Sec-WebSocket-Accept")
    return rest


def open_client_socket(host, port, path):
    """Connect a blocking TCP socket and complete the opening handshake.

    Return (socket, bytes received after the handshake).
    """
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rest = client_handshake(sock, host, port, path)
    return sock, rest
