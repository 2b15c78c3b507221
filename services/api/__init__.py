"""The CloudStack-compatible HTTP API: authentication, the command table, async jobs (DESIGN section 9)."""
