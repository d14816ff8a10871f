"""Replayable bag -> Minari conversions: a robot's YAML mapping file and re-running a
conversion from a dataset's own metadata.

A mapping says, once per robot, what :func:`~liquid_control.data.bags.bag2minari` needs
to know about its bags: the camera topic and how frames are cropped and resized, the
command topic, its message family and how a command becomes the label (path curvature,
1/m, REP 103 sign or flipped), which clock places messages (header stamps or log time),
how far a command may be from its frame, and which rules split a bag into episodes (a
stamp gap, start/reset events, or neither: one episode per bag). :class:`BagMapping` is
its typed schema (checked by :mod:`liquid_control.schema`: an unknown key or a bad value
is one line naming the key); ``bag2minari --mapping FILE BAG...`` applies one mapping to
many bags into one dataset. Every conversion stores the validated mapping, every
argument and the bags' absolute paths in the dataset's metadata, so
:func:`rerun_conversion` (``bag2minari --rerun DATASET_ID``) repeats it exactly into the
dataset's next version.

Example (every key optional; these are the defaults)::

    image:
      topic: camera/image_raw       # sensor_msgs/Image or CompressedImage
      crop: [0, 0, 0, 0]            # top, bottom, left, right pixels removed first
      size: [66, 200]               # then resized to (height, width); null keeps it
      encoding: lossless            # or jpeg (Minari's lossy storage)
    command:
      topic: cmd_vel
      type: auto                    # twist, ackermann or auto (by the topic's type)
      label: curvature              # path curvature, 1/m
      sign: 1                       # -1: the robot's positive steering turns right
      wheelbase_m: 2.7              # ackermann: curvature = tan(steering_angle) / wheelbase
      min_speed_mps: 0.1            # twist: curvature = angular.z / linear.x above this
      max_abs_curvature: 0.2        # labels beyond are clipped (and counted)
    stamps: header                  # or log: place messages by log (receive) time
    tolerance_s: 0.1                # a command stamped at most this long before its frame
    episodes:
      split_on: [gap, event]        # []: one episode per bag
      gap_s: 0.5
      events_topic: episode_events
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from liquid_control.data.bags import CONVERSION_METADATA_KEY, bag2minari
from liquid_control.errors import UserError
from liquid_control.schema import SCHEMA_CONFIG, load_yaml, parse

Pixels = Annotated[int, Field(ge=0)]
Size = Annotated[int, Field(ge=1, le=4096)]


@dataclass
class ImageMapping:
    __pydantic_config__ = SCHEMA_CONFIG

    topic: str = "camera/image_raw"
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage (jpeg, png)."""
    crop: tuple[Pixels, Pixels, Pixels, Pixels] = (0, 0, 0, 0)
    """top, bottom, left, right pixels removed before resizing (policy_node's ``crop``)."""
    size: tuple[Size, Size] | None = (66, 200)
    """(height, width) of the dataset's frames; null keeps the recorded size."""
    encoding: Literal["lossless", "jpeg"] = "lossless"


@dataclass
class CommandMapping:
    __pydantic_config__ = SCHEMA_CONFIG

    topic: str = "cmd_vel"
    type: Literal["auto", "twist", "ackermann"] = "auto"
    label: Literal["curvature"] = "curvature"
    """the label convention: path curvature (1/m), what the lane policies output."""
    sign: Literal[1, -1] = 1
    wheelbase_m: Annotated[float, Field(gt=0.0)] = 2.7
    min_speed_mps: Annotated[float, Field(ge=0.0)] = 0.1
    max_abs_curvature: Annotated[float, Field(gt=0.0)] = 0.2


@dataclass
class EpisodeRules:
    __pydantic_config__ = SCHEMA_CONFIG

    split_on: list[Literal["gap", "event"]] = field(default_factory=lambda: ["gap", "event"])
    """gap: a stamp step above gap_s; event: a start/reset event on events_topic. A stamp
    going back always splits."""
    gap_s: Annotated[float, Field(gt=0.0)] = 0.5
    events_topic: str = "episode_events"


@dataclass
class BagMapping:
    """How one robot's bags become a lane-keeping dataset (see the module docstring)."""

    __pydantic_config__ = SCHEMA_CONFIG

    image: ImageMapping = field(default_factory=ImageMapping)
    command: CommandMapping = field(default_factory=CommandMapping)
    stamps: Literal["header", "log"] = "header"
    tolerance_s: Annotated[float, Field(ge=0.0)] = 0.1
    episodes: EpisodeRules = field(default_factory=EpisodeRules)

    def bag2minari_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`bag2minari` this mapping stands for."""
        return {
            "image_topic": self.image.topic,
            "command_topic": self.command.topic,
            "tolerance_s": self.tolerance_s,
            "gap_s": self.episodes.gap_s,
            "image_size": self.image.size,
            "command_kind": self.command.type,
            "wheelbase_m": self.command.wheelbase_m,
            "max_abs_curvature": self.command.max_abs_curvature,
            "min_speed_mps": self.command.min_speed_mps,
            "events_topic": self.episodes.events_topic,
            "time_source": self.stamps,
            "image_encoding": self.image.encoding,
            "crop": self.image.crop,
            "curvature_sign": self.command.sign,
            "split_on": self.episodes.split_on,
        }


def load_mapping(path: str | Path) -> BagMapping:
    """The mapping file at ``path``, validated (UserError: one line naming the key)."""
    return load_yaml(BagMapping, path, "mapping")


def convert_with_mapping(
    mapping: BagMapping,
    bags: Sequence[str | Path],
    dataset_id: str,
    source: str = "",
    append: bool = False,
) -> dict[str, Any]:
    """Apply ``mapping`` to ``bags`` into one new dataset, or with ``append`` into an
    existing one (``bag2minari``'s summary); the mapping and ``source`` (its file) are
    stored in the dataset's metadata."""
    provenance = {"mapping": _jsonable(dataclasses.asdict(mapping)), "mapping_file": source}
    return bag2minari(
        bags,
        dataset_id=dataset_id,
        provenance=provenance,
        append=append,
        **mapping.bag2minari_arguments(),
    )


def stored_conversion(dataset: str) -> dict[str, Any]:
    """What made ``dataset`` (an id or a path): bags, arguments and mapping, as stored."""
    from liquid_control.data.minari_io import _data_dir

    metadata = json.loads((_data_dir(dataset) / "metadata.json").read_text())
    record = metadata.get(CONVERSION_METADATA_KEY)
    if not isinstance(record, dict) or "arguments" not in record:
        raise UserError(
            f"dataset {dataset} was not made by bag2minari (or by a version that did not "
            "store its conversion); convert its bags again with --mapping"
        )
    return record


def next_version(dataset_id: str) -> str:
    """``ns/name-v3`` -> ``ns/name-v4``."""
    match = re.fullmatch(r"(.+-v)(\d+)", dataset_id)
    if match is None:
        raise UserError(f"dataset id {dataset_id!r} has no -v<N> version to bump")
    return f"{match[1]}{int(match[2]) + 1}"


def rerun_conversion(dataset_id: str, new_id: str | None = None) -> dict[str, Any]:
    """Repeat the conversion that made ``dataset_id`` (same bags, same arguments) into
    ``new_id`` (default: its next version)."""
    record = stored_conversion(dataset_id)
    provenance = {k: v for k, v in record.items() if k not in ("bags", "arguments")}
    provenance["rerun_of"] = dataset_id
    return bag2minari(
        record["bags"],
        dataset_id=new_id or next_version(dataset_id),
        provenance=provenance,
        **record["arguments"],
    )


def mapping_from_options(**options: Any) -> BagMapping:
    """A mapping from the flat options ``bag2minari``'s command line takes (None: default),
    so a conversion made without a file is stored like one made with it."""
    given = {k: v for k, v in options.items() if v is not None}
    data: dict[str, Any] = {"image": {}, "command": {}, "episodes": {}}
    for key, (section, name) in _FLAT_OPTIONS.items():
        if key in given:
            (data[section] if section else data)[name] = given[key]
    return parse(BagMapping, data, "bag2minari options")


_FLAT_OPTIONS = {
    "image_topic": ("image", "topic"),
    "command_topic": ("command", "topic"),
    "tolerance_s": ("", "tolerance_s"),
    "gap_s": ("episodes", "gap_s"),
    "time_source": ("", "stamps"),
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
