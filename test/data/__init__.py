"""Tests of liquid_control.data (a package so test/train can reuse its synthetic envs)."""
