# Front door for machines without ROS 2 tooling: every target first makes sure .venv is set up.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
ENV := . scripts/env.sh

.PHONY: setup drive test lint format bench

setup:
	bash scripts/setup.sh

drive: setup  ## closed-loop lane keeping with the shipped default policy
	$(ENV) && liquid-control drive

test: setup  ## lint, format check and the test suite
	$(ENV) && ruff check . && ruff format --check . && pytest -q

lint: setup
	$(ENV) && ruff check . && ruff format --check .

format: setup
	$(ENV) && ruff check --fix . && ruff format .

bench: setup  ## the shipped lane pair up the robustness ladders; writes bench/results/lane_v1_shipped.*
	$(ENV) && liquid-control bench lane --shipped
