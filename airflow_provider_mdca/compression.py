"""Gzip for staged parts and Devo HTTP bodies: ISA-L's (``isal``, a dependency), else the standard library's.

Both write standard gzip (RFC 1952), so either reads what the other wrote: a part staged on one worker ships from
another whatever it has installed. ISA-L is chosen for speed: on MDCA's JSON lines it compresses several times and
inflates about twice as fast as zlib at a similar ratio (measured figures: README, "Performance"), and with zlib gzip
was a large share of the flatten step. The standard library's ``gzip`` remains the fallback for a platform that has
no ``isal`` wheel.

Writers set ``mtime`` to 0 and no file name, so the same records give the same bytes (and sha256) with one codec.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import IO, Any, cast

__all__ = ["DEFAULT", "STDLIB", "GzipCodec", "available"]


@dataclass(frozen=True)
class GzipCodec:
    """One gzip implementation: a module with the standard ``gzip.GzipFile`` interface, its level and its errors.

    :param name: ``isal`` or ``zlib``.
    :param module: ``gzip`` or a drop-in (``isal.igzip``).
    :param level: the compression level writers use: the implementation's fast end (staging is transient; a request
        body is compressed once).
    :param errors: what reading corrupt or truncated data raises, beyond ``OSError`` and ``EOFError``.
    """

    name: str
    module: ModuleType
    level: int
    errors: tuple[type[BaseException], ...]

    def writer(self, fileobj: Any) -> IO[bytes]:
        """A gzip stream writing to ``fileobj`` (anything with ``write``).

        Closing the stream writes the gzip trailer and leaves ``fileobj`` open.
        """
        stream: IO[bytes] = self.module.GzipFile(
            filename="", mode="wb", fileobj=fileobj, compresslevel=self.level, mtime=0
        )
        return stream

    def compress(self, data: bytes) -> bytes:
        """``data`` as one gzip member (a request body), like the parts: no modification time, no file name."""
        packed: bytes = self.module.compress(data, compresslevel=self.level, mtime=0)
        return packed

    def reader(self, fileobj: Any) -> IO[bytes]:
        """A gzip stream reading ``fileobj`` (anything with ``read``): several members are read as one stream."""
        stream: IO[bytes] = self.module.GzipFile(filename="", mode="rb", fileobj=fileobj)
        return stream


# zlib: levels 4 to 9 switch to its slower strategy; 3 compresses twice as fast as the default 6 on these lines.
STDLIB = GzipCodec("zlib", gzip, 3, (OSError, EOFError, zlib.error))


def _isal() -> GzipCodec | None:
    try:
        from isal import igzip, isal_zlib
    except ImportError:  # no wheel for this platform: the standard library does the same work, slower
        return None
    # ISA-L's levels run 0-3; they cost about the same here, and 2 (its default) compresses best of 0-2.
    isal_error = cast(type[BaseException], isal_zlib.error)  # its stub calls the class an instance
    return GzipCodec("isal", igzip, 2, (OSError, EOFError, zlib.error, isal_error))


def available() -> list[GzipCodec]:
    """Every codec this interpreter can use, the preferred first."""
    codec = _isal()
    return [STDLIB] if codec is None else [codec, STDLIB]


#: The codec staging writes and reads with.
DEFAULT: GzipCodec = available()[0]
