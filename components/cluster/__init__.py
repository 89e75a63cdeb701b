"""The cluster: what a Kubernetes run needs beyond the graph, and the Kubeflow Trainer v2 TrainJob client.

- `settings`: `ClusterSettings`, the one definition of the cluster's resources, secrets, node placement, the shared
  PVC and the TrainJob runtime, read by the pipeline (compile time) and by the TrainJob launcher (run time);
- `trainjob_config`: `TrainJobConfig`, one job's shape (nodes x ranks, timeout, cleanup), placed by its
  `ClusterSettings`;
- `trainjob_spec`: the TrainJob manifest (pure, no API calls) and the API names it uses;
- `kube`, `logs`, `watch`, `run`: the launcher that creates the job, follows its pods' logs, polls its conditions
  and cleans it up.

Nothing here imports the training code: `components.training.trainjob_run` prepares the run and calls `run`. The
kubernetes client is imported only when a job is launched, so the pipeline compiles without loading it.
"""
