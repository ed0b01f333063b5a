"""Pure functions on datasets and files: no database, no sockets, typed errors.

Each tool is a module (or a small package) used three ways: offline from ``node-ctl``,
as a job triggered on ingest, and as a job triggered by command.
"""
