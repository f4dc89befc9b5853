"""Two workers for the suite (`pytest -n 2`, pytest-xdist's loadgroup): chapter-1's end-to-end test
on one, everything else on the other, in its usual order.

chapter-1 spends most of its 40 minutes on one emulated CPU booting nested guests, while
the rest of the suite mostly waits on other guests: side by side, the host's two cores both work.
Everything else stays in one group because many of those tests share host resources (libvirtd's
inventory, network namespaces, the image store) and were written to run one at a time.
"""

from __future__ import annotations

import pytest

ALONE = {"test_chapter1.py": "chapter-1"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(ALONE.get(item.path.name, "host")))
