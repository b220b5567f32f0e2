"""One version: include/ember.h's macros, the loaded libember, the package's metadata."""
import os
import re

import pytest

from conftest import ROOT
import ember


def header_version():
    with open(os.path.join(ROOT, "include", "ember.h")) as f:
        text = f.read()
    parts = [re.search(r"#define\s+EMBER_VERSION_%s\s+(\d+)" % p, text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def test_library_version_is_the_headers():
    assert ember.__version__ == header_version()


@pytest.mark.skipif(os.environ.get("EMBER_TEST_INSTALLED") != "1",
                    reason="the package's metadata exists only when it is installed (tools/python-test.sh)")
def test_installed_metadata_version_is_the_headers():
    from importlib.metadata import version
    assert version("ember-bert") == header_version()
