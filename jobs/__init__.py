"""The sync role: work billy starts by itself (hold expiry now; Balance reports later)."""
