"""Experts that act from privileged state and label the datasets: the lane keeper's pure
pursuit (:mod:`.lane`), the drone's (:mod:`.drone`) and the Walker2d stable-baselines3
policy with its training loop and dataset levels (:mod:`.walker`). They sit beside the
envs, not in them: an env defines the task; an expert is one way of solving it.
"""
