"""``node-ctl``: SCU operations, offline tools and admin of a running node."""
