#!/usr/bin/env bash
# Set up a virtualenv and run the node on the embedded default: SQLite index and a local file
# store under var/, DICOM port 11112, AE title DICOM_NODE (examples/node.cfg).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/node-ctl serve --config "${NODE_CONFIG:-examples/node.cfg}" "$@"
