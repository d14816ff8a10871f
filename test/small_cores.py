"""Hand-sized cores the tests share."""

from __future__ import annotations

from liquid_control.models.policy import CoreConfig

# The sizes of a 10-neuron NCP with 2 motor neurons: small enough to compare gradients
# quickly and to read a saliency map of.
SMALL_NCP_SIZES = {
    "inter_neurons": 5,
    "command_neurons": 3,
    "motor_neurons": 2,
    "sensory_fanout": 3,
    "inter_fanout": 2,
    "recurrent_command_synapses": 2,
    "motor_fanin": 2,
}
SMALL_NCP = CoreConfig(kind="cfc", wiring="ncp", **SMALL_NCP_SIZES)
