"""``python -m drnn_demo ...``: see :mod:`drnn_demo.cli`."""

from .cli import main

raise SystemExit(main())
