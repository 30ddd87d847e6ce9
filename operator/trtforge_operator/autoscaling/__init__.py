"""Autoscaling of the serving pods on load.

`algorithm` is the pure, clock-injected decision core (Knative-KPA-like stable and panic windows);
`scrape` reads the runtime pods' `/metrics`; `controller` is the operator-level loop of the built-in
mode, which decides and hands decisions to the reconcile queue; `hpa` and `keda` render the children of
the hpa and keda modes, which `children` keeps in line from the ModelDeployment's reconcile.
Nothing here imports kopf.
"""
