"""``python -m drnn_demo.bench_ui``: the same as ``python -m drnn_demo.bench ui``."""

from . import main

raise SystemExit(main())
