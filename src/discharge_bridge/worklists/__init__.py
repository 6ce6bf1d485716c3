"""Read-only projections for people: the coordinator's worklist."""
