"""docker-cd's whole pipeline on one machine: what stands in for GitLab, its runner and a
registry, so a team can try its own application (`scripts/demo.sh --app PATH`) and the
end-to-end tests and benchmarks run the real thing. Nothing in `steps` or `promotion_service`
imports it.

    gitlab_double  the GitLab API double (`docker-cd-gitlab-double`): the endpoints docker-cd
                   uses, answering as GitLab does
    registry       a Docker Distribution process on 127.0.0.1, with basic auth on request
    service        the promotion service as a process (migrated, a token per role, served)
    pipelines      AppRepo: an application's git repository run by gitlab-ci-local (shell or
                   docker executor)
    stack          Stack: all of the above started together for one application
    demo           `scripts/demo.sh`: an application from a commit to production
"""
