"""Operator tools: tail, decode, offsets, dlq, replay, rebuild (billy/ops/cli.py)."""
