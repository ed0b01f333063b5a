"""One module per DIMSE service: pynetdicom event handlers that stay thin.

A handler decodes the event, calls ``storage`` (or ``node.tools``) and maps the outcome to
a PS3.4 status (``status.STATUS_FOR``).  No SQL and no paths here.
"""
