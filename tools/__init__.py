"""Command-line tools; each is a thin wrapper over library functions (``main(argv)`` is callable)."""
