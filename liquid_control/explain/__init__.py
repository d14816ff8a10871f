"""Explaining a policy: saliency maps, neuron traces, the wiring diagram, and attention
measured against the simulator's ground truth (``liquid-control explain``,
``liquid-control bench attention``, ``policy_node``'s saliency topic)."""
