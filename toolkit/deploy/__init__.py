"""Deploying a repository in object storage beyond one machine: Kubernetes manifests and monitoring assets.

:mod:`~toolkit.deploy.k8s` writes a Kustomize base with ``cpu``/``gpu`` overlays (why Kustomize: see its
docstring), :mod:`~toolkit.deploy.kserve` the KServe ``InferenceService`` alternative,
:mod:`~toolkit.deploy.monitoring` the prometheus-adapter rule, alert rules and Grafana dashboard, and
:mod:`~toolkit.deploy.source` reads the repository's plan records to pick the image and GPUs.
"""
