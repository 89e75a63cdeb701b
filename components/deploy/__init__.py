"""Putting a registered, published version into service and proving it serves: the deploy target's settings
(`DeployConfig`), the serving-metrics window that verifies a rollout, the outcome every deploy reports, and the
errors that refuse one before anything changes.

The moves themselves live where their APIs do: Triton's repository API for a local `omni serve`
(serving/deploy_local.py), the Kubernetes Deployment the Helm chart owns for a cluster (components/cluster/
serving_rollout.py, driven by serving/deploy_cluster.py). Both verify the same way and report a `DeployOutcome`.
"""
