"""SQL-bound operations of the service: each takes a Session (the caller commits) and an Actor."""
