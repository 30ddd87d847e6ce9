"""Autoscaling of the serving pods on load.

`algorithm` is the pure, clock-injected decision core (Knative-KPA-like stable and panic windows);
`scrape` reads the runtime pods' `/metrics`; `controller` is the thin I/O loop of the built-in mode;
`hpa` and `keda` render the children of the hpa and keda modes; `handlers` wires it all into kopf.
Only `handlers` imports kopf, so importing this package stays light.
"""
