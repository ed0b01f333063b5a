"""Alembic environment and revisions: the only way the index schema changes.

``storage.migrate.upgrade(url)`` runs them programmatically (``node-ctl db upgrade`` and the
daemon's start-up); ``alembic.ini`` at the repository root serves the ``alembic`` CLI.
"""
