# Types of the optional C extension built from _speedups.c. The functions
# match mask_python and mask_into_python in lomond/protocol/mask.py.

from lomond.protocol.mask import BytesLike

def mask(key: BytesLike, data: BytesLike, /) -> bytes: ...
def mask_into(out: bytearray | memoryview, offset: int, key: BytesLike, data: BytesLike, /) -> None: ...
