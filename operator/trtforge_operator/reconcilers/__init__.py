"""One module per child kind, each a pure function from the plan to the desired manifest (a dict).

The manifests follow the Kubernetes API types faithfully (batch/v1 Job, apps/v1 Deployment, v1 Service,
v1 ConfigMap, policy/v1 PodDisruptionBudget); the tests check each round-trips through the official
client's models. Applying them is `trtforge_operator.apply`'s job.
"""
