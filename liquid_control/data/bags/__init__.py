"""rosbag2 in and out: :class:`BagWriter` (atomic bag writing for ``bag_recorder``) and
:func:`bag2minari` (recorded drives -> a lane-keeping Minari dataset, in constant memory).

One module, one job: :mod:`.types` (message types), :mod:`.writer` (writing bags),
:mod:`.reader` (reading one bag's frames, commands and events), :mod:`.split` (episodes
and labels), :mod:`.convert` (the conversion).
"""

from liquid_control.data.bags.convert import bag2minari
from liquid_control.data.bags.types import (
    ACKERMANN_TYPES,
    BAG_VERSION,
    COMMAND_KINDS,
    CONVERSION_METADATA_KEY,
    IMAGE_TYPES,
    RESET_EVENTS,
    SPLIT_RULES,
    STORAGES,
    TIME_SOURCES,
    TWIST_TYPES,
    typestore,
)
from liquid_control.data.bags.writer import BagWriter

__all__ = [
    "ACKERMANN_TYPES",
    "BAG_VERSION",
    "COMMAND_KINDS",
    "CONVERSION_METADATA_KEY",
    "IMAGE_TYPES",
    "RESET_EVENTS",
    "SPLIT_RULES",
    "STORAGES",
    "TIME_SOURCES",
    "TWIST_TYPES",
    "BagWriter",
    "bag2minari",
    "typestore",
]
