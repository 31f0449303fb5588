"""Parity tooling: torch -> Paddle weight conversion and the reprod_log alignment checks."""
