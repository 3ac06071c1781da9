"""GitLab integration: the client, webhook events applied to the service, the
merge-request gate, and deployment approvals kept in step with GitLab's."""
