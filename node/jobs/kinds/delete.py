"""``delete``: remove the selected instances from the index, then their files (and what
``render`` derived from them). No parameters beyond the selection (which must name at
least one UID: there is no "delete everything")."""

from __future__ import annotations

from typing import Any

from node.jobs.kinds.base import JobKind


class Delete(JobKind):
    name = "delete"
    help = "delete instances, series or studies (index first, then files)"

    def start(self, ctx: Any, params: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        from node.jobs.work import DeleteWork

        return DeleteWork(ctx, params, checkpoint)


KIND = Delete()
