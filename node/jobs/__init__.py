"""Server-side jobs: the kinds (``node.jobs.kinds``), their per-step work
(``node.jobs.work``) and the runner on the daemon's loop (``node.jobs.runner``).

The queue itself lives in the index (``storage.jobs.JobQueue``). ``docs/jobs.md`` has the
whole picture.
"""

from __future__ import annotations

from node.jobs.kinds import KINDS, InvalidJobParams, parse_job_args, submit_job

__all__ = ["KINDS", "InvalidJobParams", "parse_job_args", "submit_job"]
