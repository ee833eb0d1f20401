"""The studio's tests run the real app: `flexip studio` / `flexip study serve` in a subprocess, driven by
gradio_client (and, in test_browser.py, by a headless Chromium). One studio server serves the whole session
(test_studio.py and test_browser.py share it)."""

from __future__ import annotations

import pytest
from studio_helpers import start_server, stop_server


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    # no --ip-adapter: the Compare tab takes the IP-Adapter baseline the miniworld preset ships (ip_adapter/).
    # One torch thread: on the shared 2-core machines two threads wait on each other at every small operation
    server = start_server(["studio", "--threads", "1"], cwd=root, out=root / "outputs", name="studio")
    yield server
    stop_server(server)
