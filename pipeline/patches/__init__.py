"""The patch engine (git apply semantics), the series, apply/revert/status/extract, rebase and the apply journal."""
