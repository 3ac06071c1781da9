"""The swarm target: the application template as Docker Swarm services.

    target   SwarmTarget: services created or updated wave by wave, converged or put back
    updates  service update arguments, canaries, task states
    spec     the template as Engine API service specs (pure)
    stack    the swarm objects of a release and their names; the keys swarm honours (pure)
    objects  networks, configs, secrets and release records on the swarm
    teardown the stack of an environment removed, its volumes kept unless asked
"""

from steps.targets.swarm.target import SwarmTarget

__all__ = ["SwarmTarget"]
