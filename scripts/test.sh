#!/usr/bin/env bash
# Set up a virtualenv with the project and its test extra, then run lint and the test suite.
# Interop tests need DCMTK/GDCM/dicom3tools (apt-get install dcmtk libgdcm-tools dicom3tools):
# on a machine without them they skip with a message; in CI (.ci/run) they are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
exec .venv/bin/pytest -q "$@"
