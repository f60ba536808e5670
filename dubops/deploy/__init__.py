"""The cluster deployment, checked offline: render the Kustomize overlays of ``infra/k8s``,
validate what they produce against the Kubernetes and CRD schemas, keep the monitoring
manifests in step with ``monitoring/``, and run the policy checks.

Nothing here talks to a cluster: ``kubectl kustomize`` renders without one, and the
schemas are the API server's own (``kubernetes-validate``) or vendored from the CRDs'
sources (``infra/k8s/crds``).
"""
