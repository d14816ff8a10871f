"""OOD statistics from Minari datasets: fit them for a policy, or add them to an existing
export (``liquid-control ood-calibrate``). Datasets are this layer's; the statistics and the
export format are ``models/``'s."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liquid_control.data.minari_io import load_episodes
from liquid_control.data.windows import split_by_episode
from liquid_control.errors import UserError
from liquid_control.models.checkpoint import load_checkpoint
from liquid_control.models.export import FILES, export_policy
from liquid_control.models.manifest import (
    load_signing_key,
    read_manifest,
    verified_file,
)
from liquid_control.models.ood import (
    DEFAULT_PERCENTILE,
    OodStats,
    calibrate_episodes,
)
from liquid_control.models.policy import PolicyConfig


def calibrate_datasets(
    policy: Any,
    datasets: Sequence[str],
    val_fraction: float = 0.25,
    seed: int = 0,
    percentile: float = DEFAULT_PERCENTILE,
) -> OodStats:
    """:func:`calibrate_episodes` over Minari datasets, split by episode with ``seed``."""
    episodes = load_episodes(list(datasets))
    shape = tuple(policy.obs_shape)
    if tuple(episodes[0].obs.shape[1:]) != shape:
        raise UserError(
            f"datasets {list(datasets)} hold observations {tuple(episodes[0].obs.shape[1:])}, "
            f"the policy takes {shape}"
        )
    fit_ids, val_ids = split_by_episode(len(episodes), val_fraction, seed)
    info = {"datasets": list(datasets), "val_fraction": val_fraction, "split_seed": seed}
    return calibrate_episodes(policy, episodes, fit_ids, val_ids, percentile, info)


def calibrate_export(
    export: str | Path,
    datasets: Sequence[str],
    *,
    val_fraction: float = 0.25,
    seed: int = 0,
    percentile: float = DEFAULT_PERCENTILE,
    sign_key: str | Path | None = None,
    trusted_keys: Sequence[str | Path] = (),
) -> tuple[Path, OodStats]:
    """Add OOD statistics from ``datasets`` to an existing export; return its manifest path
    and the statistics. No ``datasets``: the ones its training config recorded.

    The export is verified first (``trusted_keys`` as for loading it), its policy rebuilt
    from its own checkpoint, and the whole directory re-exported atomically from that
    checkpoint with the same ``dt_s``: the step files gain the OOD feature output if they
    predate it, the statistics become a hashed file, and the manifest is sealed again. A
    signed export must be re-signed (``sign_key``): the old signature no longer covers it.
    """
    # Refused before the datasets load, not after.
    if not 50.0 <= percentile < 100.0:
        raise UserError(f"percentile must be in [50, 100), got {percentile}")
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"the validation fraction must be in (0, 1), got {val_fraction}")
    manifest, root = read_manifest(export, trusted_keys)
    if manifest.get("signature") is not None and sign_key is None:
        raise UserError(
            f"the export in {root} is signed; pass --sign KEY to re-sign it with its new "
            "OOD statistics (it cannot keep a signature of the old manifest)"
        )
    signing_key = None if sign_key is None else load_signing_key(sign_key)
    if not datasets:
        trained_on = manifest.get("info", {}).get("config", {}).get("datasets")
        if not trained_on:
            raise UserError(
                f"the export in {root} records no training datasets; name one with --dataset"
            )
        datasets = list(trained_on)
    checkpoint = verified_file(manifest, root, "checkpoint")
    policy, _ = load_checkpoint(checkpoint)
    if policy.cfg != PolicyConfig.from_dict(manifest["config"]):
        raise UserError(f"checkpoint {checkpoint} does not match the manifest's config")
    stats = calibrate_datasets(policy, datasets, val_fraction, seed, percentile)
    with tempfile.TemporaryDirectory() as tmp:
        # The export directory is replaced as a whole: export from a copy of its checkpoint.
        source = Path(tmp) / FILES["checkpoint"]
        shutil.copyfile(checkpoint, source)
        path = export_policy(
            source,
            root,
            onnx="onnx" in manifest["files"],
            sign_key=signing_key,
            dt_s=manifest.get("dt_s"),
            ood=stats,
        )
    return path, stats
