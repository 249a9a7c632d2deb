"""``python -m optax_rmsprop``: a short offline tour; see :mod:`optax_rmsprop.tour`."""

import sys

from optax_rmsprop.tour import main

if __name__ == "__main__":
    sys.exit(main())
