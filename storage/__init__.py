"""Where instances live and how they are found: the index (SQLAlchemy) and the file store.

This layer never imports ``node`` or pynetdicom.
"""
