"""WebSocket close codes (RFC 6455 section 7.4 and the IANA registry).

The registry is at
https://www.iana.org/assignments/websocket/websocket.xml#close-code-number
"""

from __future__ import annotations

__all__ = ["Status", "is_valid_close_code"]


class Status:
    """Close codes, named as in RFC 6455 section 7.4.1."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    DATA_NOT_UNDERSTOOD = 1003
    # 1004 is reserved. 1005 and 1006 are never sent on the wire: they stand
    # for "no code was received" and "the connection closed abnormally".
    NO_STATUS = 1005
    ABNORMAL_CLOSURE = 1006
    BAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_LARGE = 1009
    EXTENSION_FAILED = 1010
    UNEXPECTED_CONDITION = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    # 1015 (TLS handshake failure) is, like 1005 and 1006, never on the wire.
    TLS_HANDSHAKE = 1015

    # lomond 0.3 exported these names.
    DATA_ERROR = PROTOCOL_ERROR
    UNSUPPORTED_DATA = DATA_NOT_UNDERSTOOD

    #: Codes that must not appear in a close frame: everything below 1000,
    #: 1004 to 1006, 1015, the unassigned 1016 to 2999 and 5000 and above.
    invalid_codes = frozenset(
        [*range(0, 1000), 1004, 1005, 1006, *range(1015, 3000)]
    )


# Close codes allowed on the wire (RFC 6455 section 7.4.2 and the IANA
# registry): 1000-1003, 1007-1014, and 3000-4999 (registered and private).
_VALID_RANGES = ((1000, 1003), (1007, 1014), (3000, 4999))


def is_valid_close_code(code: int) -> bool:
    """Return whether ``code`` may be sent or received in a close frame."""
    for low, high in _VALID_RANGES:
        if low <= code <= high:
            return True
    return False
