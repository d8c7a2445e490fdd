"""Public face of the dxLink FEED_DATA decoder (compiled in ``ttfast._core.feed``).

``FeedDecoder`` (one per dxLink FEED channel) turns FEED_DATA frames into ``EventBatch`` objects
of typed numpy columns; ``message_type`` routes other messages cheaply.
"""

from __future__ import annotations

from ttfast._core import EventBatch, FeedDecoder, field_kinds, message_type
from ttfast.errors import DecodeError

__all__ = ["DecodeError", "EventBatch", "FeedDecoder", "field_kinds", "message_type"]
