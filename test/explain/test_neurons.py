"""Neuron tables and the wiring diagram: what each state entry is, and only real synapses."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from small_cores import SMALL_NCP_SIZES

from liquid_control.explain.neurons import draw_wiring, neuron_table
from liquid_control.models import Policy, PolicyConfig
from liquid_control.models.frontends import FrontendConfig
from liquid_control.models.policy import CoreConfig

NCP = {"wiring": "ncp", **SMALL_NCP_SIZES}


def policy(kind: str, **core) -> Policy:
    torch.manual_seed(0)
    frontend = FrontendConfig(image_height=48, image_width=96, convs=[[4, 5, 2], [4, 3, 2]])
    return Policy(PolicyConfig(frontend=frontend, core=CoreConfig(kind=kind, **core), action_dim=2))


def test_a_wired_cfc_state_is_layer_by_layer_and_an_ltc_state_by_neuron_id() -> None:
    cfc = neuron_table(policy("cfc", **NCP))
    assert [n.role for n in cfc] == ["inter"] * 5 + ["command"] * 3 + ["motor"] * 2
    # ncps numbers motor neurons first, then command, then inter.
    assert [n.name for n in cfc[:2]] == ["inter_5", "inter_6"] and cfc[-1].name == "motor_1"
    ltc = neuron_table(policy("ltc", **NCP))
    assert [n.name for n in ltc[:3]] == ["motor_0", "motor_1", "command_2"]
    assert len(ltc) == policy("ltc", **NCP).state_size == 10
    lstm = neuron_table(policy("lstm", units=3))
    assert [n.name for n in lstm] == ["h_0", "h_1", "h_2", "c_0", "c_1", "c_2"]
    assert len(neuron_table(policy("ff", units=7))) == 7


def test_the_diagram_draws_each_synapse_of_the_wiring_once_with_its_polarity(
    tmp_path: Path,
) -> None:
    ltc = policy("ltc", **NCP)
    wiring = ltc.core.wiring
    real = int(
        np.abs(wiring.sensory_adjacency_matrix).sum() + np.abs(wiring.adjacency_matrix).sum()
    )
    counts = draw_wiring(ltc, tmp_path / "w.png")
    assert counts["excitatory_synapses"] + counts["inhibitory_synapses"] == real
    assert (counts["inter_neurons"], counts["command_neurons"], counts["motor_neurons"]) == (
        5,
        3,
        2,
    )
    assert cv2.imread(str(tmp_path / "w.png")) is not None
    # An LTC's polarity is its trained reversal potential: flipping one flips its colour.
    i, j = np.argwhere(wiring.adjacency_matrix != 0)[0]
    with torch.no_grad():
        erev = ltc.core.rnn_cell.erev
        erev[i, j] = -erev[i, j] if erev[i, j] != 0 else 1.0
    was_excitatory = wiring.adjacency_matrix[i, j] > 0
    flipped = draw_wiring(ltc, tmp_path / "w2.png")
    change = -1 if was_excitatory else 1
    assert flipped["excitatory_synapses"] == counts["excitatory_synapses"] + change
    with pytest.raises(ValueError, match="no wiring diagram"):
        draw_wiring(policy("gru", units=4), tmp_path / "none.png")
