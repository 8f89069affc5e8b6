"""rpm-fallback.macros' %pyproject_install: install the built wheels into the buildroot with
Fedora's layout (python3-installer, as pyproject-rpm-macros does).

usage: install-wheel.py BUILDROOT SITELIB BINDIR PYTHON WHEEL...
"""

import sys

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

root, sitelib, bindir, python, *wheels = sys.argv[1:]
scheme = {"purelib": sitelib, "platlib": sitelib, "scripts": bindir, "data": "/usr",
          "headers": "/usr/include"}
destination = SchemeDictionaryDestination(scheme, interpreter=python, script_kind="posix",
                                          destdir=root)
for path in wheels:
    with WheelFile.open(path) as wheel:
        install(wheel, destination, {"INSTALLER": b"rpm"})
