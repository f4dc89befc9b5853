"""Two workers for the suite (`pytest -n 2`, pytest-xdist's loadgroup): chapter-2-linux's end-to-end
test on one, everything else on the other, in its usual order.

chapter-2-linux is the longest test by far (two instances of six guests, twelve solved steps: about
forty minutes); everything else together, chapter-1's end to end included, takes about as long.
Side by side, the host's two cores both work. Everything else stays in one group because many of
those tests share host resources (libvirtd's inventory, network namespaces, the image store) and
were written to run one at a time; the two chapter labs only use their own instances.
"""

from __future__ import annotations

import pytest

ALONE = {"test_chapter2_linux.py": "chapter-2-linux"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(ALONE.get(item.path.name, "host")))
