"""A Singer message writer that encodes with msgspec and flushes only when it matters."""

from __future__ import annotations

import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import SingerMessageType
from typing_extensions import override

TYPE_CHECKING = False
if TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message


class BufferedMsgSpecWriter(MsgSpecWriter):
    """Flushes stdout at each STATE message instead of after every record.

    The target sees records and states in order either way; a process killed mid-sync
    loses only unflushed output that no emitted STATE covers, so state never runs ahead.
    """

    @override
    def write_message(self, message: Message) -> None:
        sys.stdout.buffer.write(self.format_message(message))
        if message.type != SingerMessageType.RECORD:
            sys.stdout.flush()
