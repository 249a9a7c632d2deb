"""Every build reads, and so executes, every page again.

Sphinx re-reads only the sources that changed since the last build, so a page whose code
failed once (say, for want of data supplied since) would keep its error output in every
rebuild. Marking every page outdated makes each build as fresh as ``sphinx-build -E``.
"""

from __future__ import annotations

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def every_page(
    app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]
) -> set[str]:
    return set(env.found_docs)


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("env-get-outdated", every_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
