"""What every command and library of the steps shares: errors with their exit codes, the log
and its masking, the declaration of inputs, the outputs a step hands on, and retries.

    errors    StepError and its exit codes (Refused 1, UsageError 2, ExternalError 3)
    inputs    a settings field that carries its option: option(), group(), resolve()
    log       the job log: lines, echoed commands, GitLab sections
    masking   secrets replaced by [MASKED] in every line and stream
    outputs   Result: the dotenv and JSON files a later job reads
    retry     transient failures retried with backoff
"""
