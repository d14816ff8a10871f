"""Tests of liquid_control.train."""
