"""``python -m rsrepro.data.synthetic --dataset NAME --out DIR [options]`` (see the package docstring)."""

from . import main

main()
