"""The neurons of a policy's core: what each state entry is, and the NCP wiring diagram.

:func:`neuron_table` names every entry of the recurrent state (the runner's ``state``) with
its neuron and role. Wired cores keep ncps's neuron ids: a wired CfC stores its state layer
by layer (inter, command, motor; each layer in ``get_neurons_of_layer`` order), an LTC by
neuron id. LSTM states are ``h`` then ``c``, GRU states ``h``. The feed-forward core has no
state (its one entry passes through), so its "neurons" are the hidden units it outputs.

:func:`draw_wiring` draws the synapses of the wiring's adjacency matrices (ncps's
``Wiring.get_graph``), in columns sensory -> inter -> command -> motor, green excitatory,
red inhibitory. The polarity is the trained reversal potential's sign for an LTC; a CfC
does not use polarity (ncps's CfC reads only the sparsity mask), so its colours are the
wiring's nominal ones, and a wired CfC also connects the neurons within each layer
all-to-all (upstream ncps #53), which the diagram leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liquid_control.models.cores import CfCCore, FeedForwardCore, LSTMCore, LTCCore
from liquid_control.models.policy import Policy

ROLES = ("sensory", "inter", "command", "motor")
COLOURS = {
    "sensory": "tab:olive",
    "inter": "tab:blue",
    "command": "tab:purple",
    "motor": "tab:orange",
    "hidden": "tab:gray",
}


@dataclass(frozen=True)
class Neuron:
    """One traced unit: its column name in the traces and its role."""

    name: str
    role: str


def wiring_of(policy: Policy):
    """The core's ncps wiring when it is wired (ncp/autoncp), else None."""
    if policy.cfg.core.wiring == "dense":
        return None
    return getattr(policy.core, "wiring", None)


def neuron_table(policy: Policy) -> list[Neuron]:
    """One entry per traced unit, in the order of :func:`activity`'s columns."""
    core, wiring = policy.core, wiring_of(policy)
    if isinstance(core, FeedForwardCore):
        return [Neuron(f"hidden_{i}", "hidden") for i in range(core.output_size)]
    if isinstance(core, LSTMCore):
        units = core.units
        return [Neuron(f"h_{i}", "hidden") for i in range(units)] + [
            Neuron(f"c_{i}", "hidden") for i in range(units)
        ]
    if wiring is None:
        return [Neuron(f"h_{i}", "hidden") for i in range(core.state_size)]
    if isinstance(core, CfCCore):
        ids = [
            int(n) for layer in range(wiring.num_layers) for n in wiring.get_neurons_of_layer(layer)
        ]
    else:
        ids = list(range(wiring.units))
    return [
        Neuron(f"{wiring.get_type_of_neuron(i)}_{i}", wiring.get_type_of_neuron(i)) for i in ids
    ]


def activity(policy: Policy, state: np.ndarray, core_output: np.ndarray) -> np.ndarray:
    """The traced values of one step (matching :func:`neuron_table`): the state after the
    step, or the hidden output of the feed-forward core."""
    values = core_output if isinstance(policy.core, FeedForwardCore) else state
    return np.asarray(values, dtype=np.float32).reshape(-1)


def synapse_polarity(policy: Policy) -> tuple[np.ndarray, np.ndarray, str]:
    """(sensory, internal) polarity matrices (+1 / -1 / 0 where no synapse) and their source."""
    wiring = wiring_of(policy)
    sensory_adj, adj = wiring.sensory_adjacency_matrix, wiring.adjacency_matrix
    if isinstance(policy.core, LTCCore):
        cell = policy.core.rnn_cell
        sensory = np.sign(cell.sensory_erev.detach().numpy()) * (sensory_adj != 0)
        internal = np.sign(cell.erev.detach().numpy()) * (adj != 0)
        return sensory, internal, "trained reversal potentials (LTC)"
    return np.sign(sensory_adj), np.sign(adj), "the wiring's nominal polarity (CfC ignores it)"


def draw_wiring(policy: Policy, path: Path, title: str = "") -> dict[str, int]:
    """Draw the wiring diagram to ``path`` (PNG); returns the counts it drew."""
    import matplotlib.patches as mpatches
    import networkx as nx

    from liquid_control.visual import pyplot, save_figure

    plt = pyplot()

    wiring = wiring_of(policy)
    if wiring is None:
        raise ValueError("a dense core has no wiring diagram")
    sensory_pol, internal_pol, source = synapse_polarity(policy)
    graph = wiring.get_graph()
    columns: dict[str, list[str]] = {role: [] for role in ROLES}
    for node, data in graph.nodes(data=True):
        columns.setdefault(data["neuron_type"], []).append(node)
    pos = {}
    for x, role in enumerate(ROLES):
        nodes = sorted(columns.get(role, []), key=lambda n: int(n.split("_")[1]))
        for k, node in enumerate(nodes):
            pos[node] = (x, 1.0 - (k + 0.5) / max(len(nodes), 1))
    edges = {"excitatory": [], "inhibitory": []}
    for src, dst in graph.edges():
        j = int(dst.split("_")[1])
        i = int(src.split("_")[1])
        sign = sensory_pol[i, j] if src.startswith("sensory") else internal_pol[i, j]
        edges["excitatory" if sign >= 0 else "inhibitory"].append((src, dst))
    fig, ax = plt.subplots(figsize=(9, 7))
    for role in ROLES:
        nodes = columns.get(role, [])
        nx.draw_networkx_nodes(
            graph, pos, nodelist=nodes, node_color=COLOURS[role], node_size=120, ax=ax
        )
    for kind, colour in (("excitatory", "tab:green"), ("inhibitory", "tab:red")):
        nx.draw_networkx_edges(
            graph,
            pos,
            edgelist=edges[kind],
            edge_color=colour,
            alpha=0.5,
            arrows=True,
            arrowsize=6,
            width=0.7,
            ax=ax,
            node_size=120,
        )
    handles = [
        mpatches.Patch(color=COLOURS[r], label=f"{r} ({len(columns.get(r, []))})") for r in ROLES
    ] + [
        mpatches.Patch(color="tab:green", label=f"excitatory ({len(edges['excitatory'])})"),
        mpatches.Patch(color="tab:red", label=f"inhibitory ({len(edges['inhibitory'])})"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3)
    ax.set_title(f"{title}\npolarity: {source}", fontsize=10)
    ax.set_axis_off()
    save_figure(fig, path)
    counts = {f"{r}_neurons": len(columns.get(r, [])) for r in ROLES}
    counts.update({f"{k}_synapses": len(v) for k, v in edges.items()})
    return counts
