"""``python -m drnn_demo.jobs RUN_DIR``: the worker of one run (see :mod:`drnn_demo.jobs.worker`).

The manager launches this command (:data:`drnn_demo.jobs.process.WORKER_MODULE`) and recognises
its workers by it, so the module name must stay ``drnn_demo.jobs``.
"""

import sys

from .worker import main

if __name__ == "__main__":
    main(sys.argv)
