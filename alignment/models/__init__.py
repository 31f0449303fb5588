"""Alignment cases, one module per model (each calls ``register_case``)."""
