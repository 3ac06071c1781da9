"""What a scan found and what the team's policy makes of it.

    findings  one model for what a scanner found, read from Trivy's or Grype's JSON (pure)
    policy    which findings stop an image; the ignore file, with reasons and expiry (pure)
    report    the log's summary, GitLab's container-scanning report, the outputs (pure)
    trivy     Trivy's commands built by pure functions, and the runner that logs them
"""
