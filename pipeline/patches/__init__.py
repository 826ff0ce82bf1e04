"""The patch stage: the hunk engine (gitdiff, hunks: git apply semantics), the in-memory tree
(overlay), the commit chain (commits), all-or-nothing writes of the work tree (worktree, journal),
the series files (series), the commands apply/revert/status/extract (operations), rebase and the
series of every Go release (allversions)."""
