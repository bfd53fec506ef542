"""Certificate status snapshots for Log Analytics and the local dashboard."""
