"""A Singer message writer that encodes with msgspec and writes stdout in large blocks."""

from __future__ import annotations

import atexit
import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import SingerMessageType
from typing_extensions import override

TYPE_CHECKING = False
if TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

#: Bytes of RECORD lines gathered before one write to stdout.
BLOCK_SIZE = 256 * 1024


class BufferedMsgSpecWriter(MsgSpecWriter):
    """Gathers RECORD lines and writes them in blocks; writes through at every other message.

    Meltano runs plugins with PYTHONUNBUFFERED=1, so without this every record would be
    one system call. Order is kept, and a STATE message is written (and flushed) only
    after every record before it: a process killed mid-sync loses only records that no
    emitted STATE covers, so state never runs ahead of the records.
    """

    def __init__(self) -> None:
        """Start with an empty block; make sure a normal exit writes what is left."""
        super().__init__()
        self._block = bytearray()
        atexit.register(self.flush)

    @override
    def write_message(self, message: Message) -> None:
        # The encoder reuses one buffer per message: copy it into the block.
        self._block += self.format_message(message)
        if message.type != SingerMessageType.RECORD or len(self._block) >= BLOCK_SIZE:
            self.flush(force=message.type != SingerMessageType.RECORD)

    def flush(self, *, force: bool = True) -> None:
        """Write the gathered lines to stdout (and flush it, when `force`)."""
        if self._block:
            sys.stdout.buffer.write(self._block)
            self._block.clear()
        if force:
            sys.stdout.flush()
