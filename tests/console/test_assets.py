"""The console's files as the package carries them: each file the page loads is there."""

from __future__ import annotations

import re

from runtime.console import assets


def test_every_file_the_page_loads_is_in_the_package() -> None:
    files = assets()
    assert {"index.html", "app.js", "console.css", "favicon.svg"} <= set(files)
    index = files["index.html"][0].decode()
    wanted = set(re.findall(r'(?:src|href)="/console/([^"]+)"', index))
    for name, (content, media_type) in files.items():
        if name.endswith(".js"):
            assert media_type.startswith("text/javascript")
            wanted |= set(re.findall(r'from "\./([^"]+)"', content.decode()))
    assert wanted and wanted <= set(files), wanted - set(files)


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name, (content, _) in assets().items():
        text = content.decode()
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), name
        assert "@import" not in text and "fonts.googleapis" not in text, name
