#!/usr/bin/env bash
# Bootstrap the Emotion Omni platform on a Kubernetes cluster, one numbered step at a time, waiting for each
# step to become ready before the next (README.md in this directory explains every step).
#
#   infra/bootstrap/bootstrap.sh all                  # steps 1-6, then verify
#   infra/bootstrap/bootstrap.sh kind all             # first create the local kind cluster (needs Docker)
#   infra/bootstrap/bootstrap.sh minio mlflow verify  # only some steps, in the order given
#
# Steps: kind | namespaces (1) | pipelines (2) | trainer (3) | minio (4) | mlflow (5) | monitoring (6) | verify
# Needs kubectl >= 1.31 (kustomize built in) and openssl; helm 3 + helmfile v1 for monitoring; kind + docker
# for kind. Credentials are generated into Secrets on first use and never printed; an existing Secret is
# kept (delete it to rotate). Environment: CLUSTER_NAME (kind, default emotion-omni), TIMEOUT (default 900s).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLUSTER_NAME="${CLUSTER_NAME:-emotion-omni}"
TIMEOUT="${TIMEOUT:-900s}"

# In-cluster addresses the Secrets point at (the Services of steps 4 and 5).
MINIO_ENDPOINT="http://minio.minio.svc.cluster.local:9000"
MLFLOW_URI="http://mlflow.mlflow.svc.cluster.local:5000"
POSTGRES_HOST="mlflow-postgres.mlflow.svc.cluster.local:5432"
# The prometheus-adapter metric the Triton chart's HPA scales on (06-monitoring/prometheus-adapter.values.yaml).
TRITON_QUEUE_METRIC="triton_queue_time_per_request_us"

# Images a kind cluster cannot pull because they are built from this repository.
LOCAL_IMAGES=(
  ghcr.io/empathy-omni/omni-components:0.1.0   # docker build -f infra/Dockerfile.components -t ... .
  ghcr.io/empathy-omni/omni-triton:0.1.0       # docker build -f infra/Dockerfile.triton -t ... .
  ghcr.io/empathy-omni/mlflow-server:3.17.2    # docker build -t ... infra/bootstrap/05-mlflow
)

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
log() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. Fix: install it ($2)."; }

# retry N CMD...: run CMD until it succeeds, at most N times, 10 s apart. Webhooks and APIServices answer a
# little after their Deployments report Available. Progress goes to stderr: callers silence CMD's stdout.
retry() {
  local attempts=$1 i
  shift
  for ((i = 1; i <= attempts; i++)); do
    if "$@"; then
      return 0
    fi
    echo "  attempt $i/$attempts failed; retrying in 10s" >&2
    sleep 10
  done
  return 1
}

need_namespace() {
  kubectl get namespace "$1" >/dev/null 2>&1 || die "namespace $1 does not exist. Fix: run step $2 first."
}

# --- Secrets -------------------------------------------------------------------------------------------------

rand() { openssl rand -hex "${1:-24}"; }

# secret_value NAMESPACE NAME KEY: one key of an existing Secret, decoded. Call it in an assignment
# (x=$(secret_value ...)) so that a failure stops the script under `set -e`.
secret_value() {
  local encoded
  encoded=$(kubectl -n "$1" get secret "$2" -o "jsonpath={.data.$3}")
  [ -n "$encoded" ] || die "Secret $1/$2 has no key $3. Fix: delete the Secret and re-run this step."
  printf '%s' "$encoded" | base64 -d
}

# create_secret NAMESPACE NAME KEY=VALUE...: create the Secret unless it exists (an existing one is kept, so
# re-running never rotates credentials behind a running service's back).
create_secret() {
  local namespace=$1 name=$2 pair
  shift 2
  if kubectl -n "$namespace" get secret "$name" >/dev/null 2>&1; then
    echo "  secret $namespace/$name exists; kept"
    return 0
  fi
  local args=()
  for pair in "$@"; do
    args+=("--from-literal=$pair")
  done
  kubectl -n "$namespace" create secret generic "$name" "${args[@]}" >/dev/null
  echo "  secret $namespace/$name created"
}

secrets_minio() {
  need openssl "https://www.openssl.org"
  need_namespace minio "namespaces (1)"
  need_namespace serving "namespaces (1)"
  local root_user root_password mlflow_secret pipelines_secret triton_secret admin_key
  root_user="admin-$(rand 4)"
  root_password=$(rand)
  create_secret minio minio-root "MINIO_ROOT_USER=$root_user" "MINIO_ROOT_PASSWORD=$root_password"
  # One MinIO user per consumer; the minio-buckets Job creates them with least-privilege policies.
  mlflow_secret=$(rand)
  pipelines_secret=$(rand)
  triton_secret=$(rand)
  create_secret minio minio-users \
    "MLFLOW_ACCESS_KEY=mlflow" "MLFLOW_SECRET_KEY=$mlflow_secret" \
    "PIPELINES_ACCESS_KEY=pipelines" "PIPELINES_SECRET_KEY=$pipelines_secret" \
    "TRITON_ACCESS_KEY=triton" "TRITON_SECRET_KEY=$triton_secret"
  # charts/emotion-omni-triton reads the model repository as the read-only triton user (values read back
  # from minio-users, which may predate this run).
  local triton_key
  triton_key=$(secret_value minio minio-users TRITON_ACCESS_KEY)
  triton_secret=$(secret_value minio minio-users TRITON_SECRET_KEY)
  admin_key=$(rand)
  create_secret serving omni-triton-secrets \
    "AWS_ACCESS_KEY_ID=$triton_key" "AWS_SECRET_ACCESS_KEY=$triton_secret" \
    "AWS_DEFAULT_REGION=us-east-1" "TRITON_ADMIN_KEY=$admin_key"
}

secrets_mlflow() {
  need openssl "https://www.openssl.org"
  need_namespace mlflow "namespaces (1)"
  need_namespace kubeflow "pipelines (2)"
  kubectl -n minio get secret minio-users >/dev/null 2>&1 \
    || die "Secret minio/minio-users is missing. Fix: run step minio (4) first."
  local db_password mlflow_key mlflow_secret pipelines_key pipelines_secret
  db_password=$(rand)
  create_secret mlflow mlflow-postgres "POSTGRES_PASSWORD=$db_password"
  db_password=$(secret_value mlflow mlflow-postgres POSTGRES_PASSWORD)
  mlflow_key=$(secret_value minio minio-users MLFLOW_ACCESS_KEY)
  mlflow_secret=$(secret_value minio minio-users MLFLOW_SECRET_KEY)
  create_secret mlflow mlflow-server \
    "MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://mlflow:$db_password@$POSTGRES_HOST/mlflow" \
    "AWS_ACCESS_KEY_ID=$mlflow_key" "AWS_SECRET_ACCESS_KEY=$mlflow_secret"
  # The contract of components/cluster/settings.py ClusterSettings: the register/promote/export steps, which run
  # in namespace kubeflow, read these four keys.
  pipelines_key=$(secret_value minio minio-users PIPELINES_ACCESS_KEY)
  pipelines_secret=$(secret_value minio minio-users PIPELINES_SECRET_KEY)
  create_secret kubeflow mlflow-credentials \
    "MLFLOW_TRACKING_URI=$MLFLOW_URI" \
    "AWS_ACCESS_KEY_ID=$pipelines_key" "AWS_SECRET_ACCESS_KEY=$pipelines_secret" \
    "MLFLOW_S3_ENDPOINT_URL=$MINIO_ENDPOINT"
}

# --- Steps ---------------------------------------------------------------------------------------------------

step_kind() {
  log "kind cluster $CLUSTER_NAME (infra/kind/kind-config.yaml)"
  need kind "https://kind.sigs.k8s.io, v0.30.0"
  need docker "https://docs.docker.com/engine/install/"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    echo "  cluster exists; kept"
  else
    kind create cluster --name "$CLUSTER_NAME" --config "$ROOT/infra/kind/kind-config.yaml" --wait 5m
  fi
  kubectl config use-context "kind-$CLUSTER_NAME"
  kubectl apply -k "$ROOT/infra/kind/metrics-server"
  kubectl -n kube-system rollout status deployment/metrics-server --timeout="$TIMEOUT"
  local image
  for image in "${LOCAL_IMAGES[@]}"; do
    if docker image inspect "$image" >/dev/null 2>&1; then
      kind load docker-image "$image" --name "$CLUSTER_NAME"
    else
      echo "  image $image is not built locally; pods using it stay in ImagePullBackOff until it is loaded"
    fi
  done
}

step_namespaces() {
  log "1 namespaces"
  kubectl apply -k "$HERE/01-namespaces"
}

step_pipelines() {
  log "2 Kubeflow Pipelines"
  kubectl apply --server-side -k "$HERE/02-kubeflow-pipelines/cluster-scoped"
  kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  kubectl apply -k "$HERE/02-kubeflow-pipelines"
  kubectl -n kubeflow wait --for=condition=Available deployment --all --timeout="$TIMEOUT"
  # The pipeline's deploy step (deploy_target=kubernetes) runs as pipeline-runner and moves the Triton release in
  # namespace serving: get/list/patch its Deployment and list its pods, nothing else.
  kubectl -n serving apply -f "$ROOT/pipelines/rbac/serving-deployer.yaml"
}

step_trainer() {
  log "3 Kubeflow Trainer"
  kubectl apply --server-side -k "$HERE/03-kubeflow-trainer/manager"
  kubectl wait --for condition=established --timeout=120s \
    crd/trainjobs.trainer.kubeflow.org \
    crd/trainingruntimes.trainer.kubeflow.org \
    crd/clustertrainingruntimes.trainer.kubeflow.org
  kubectl -n kubeflow-system wait --for=condition=Available deployment --all --timeout="$TIMEOUT"
  retry 12 kubectl apply --server-side -k "$HERE/03-kubeflow-trainer/runtimes"
  kubectl get clustertrainingruntime torch-distributed-deepspeed
  # Standalone KFP runs every pipeline as ServiceAccount pipeline-runner in kubeflow; with
  # train_backend=trainjob the train step creates and follows TrainJobs, which this Role allows.
  local launcher_role="$ROOT/pipelines/rbac/trainjob-launcher.yaml"
  if [ -f "$launcher_role" ] && kubectl get namespace kubeflow >/dev/null 2>&1; then
    kubectl -n kubeflow apply -f "$launcher_role"
    kubectl -n kubeflow create rolebinding omni-trainjob-launcher --role=omni-trainjob-launcher \
      --serviceaccount=kubeflow:pipeline-runner --dry-run=client -o yaml | kubectl apply -f -
  fi
}

step_minio() {
  log "4 MinIO"
  secrets_minio
  # A Job's pod template cannot be changed in place; the setup it runs is idempotent, so run it afresh.
  kubectl -n minio delete job minio-buckets --ignore-not-found
  kubectl apply -k "$HERE/04-minio"
  kubectl -n minio rollout status statefulset/minio --timeout="$TIMEOUT"
  kubectl -n minio wait --for=condition=complete job/minio-buckets --timeout="$TIMEOUT"
}

step_mlflow() {
  log "5 MLflow"
  secrets_mlflow
  kubectl apply -k "$HERE/05-mlflow"
  kubectl -n mlflow rollout status statefulset/mlflow-postgres --timeout="$TIMEOUT"
  kubectl -n mlflow rollout status deployment/mlflow --timeout="$TIMEOUT"
}

step_monitoring() {
  log "6 Prometheus, Grafana, prometheus-adapter"
  need helm "https://helm.sh/docs/intro/install/"
  need helmfile "https://helmfile.readthedocs.io, v1"
  need openssl "https://www.openssl.org"
  need_namespace monitoring "namespaces (1)"
  local grafana_password
  grafana_password=$(rand)
  create_secret monitoring grafana-admin "admin-user=admin" "admin-password=$grafana_password"
  helmfile --file "$HERE/helmfile.yaml" sync
  kubectl apply -k "$HERE/06-monitoring"
  # TrainJobs run in kubeflow (step 2), which this step otherwise does not need: skip rather than fail.
  if kubectl get namespace kubeflow >/dev/null 2>&1; then
    kubectl apply -k "$HERE/06-monitoring/training"
  else
    echo "  namespace kubeflow is absent: training runs are not scraped. Fix: run step pipelines (2), then this one"
  fi
  retry 18 kubectl get --raw /apis/custom.metrics.k8s.io/v1beta1 >/dev/null
}

step_verify() {
  log "verify"
  kubectl -n kubeflow wait --for=condition=Available deployment/ml-pipeline --timeout=60s
  kubectl get clustertrainingruntime torch-distributed-deepspeed
  kubectl -n minio wait --for=condition=Ready pod/minio-0 --timeout=60s
  kubectl -n mlflow exec deployment/mlflow -- python -c \
    "import urllib.request as u; print('mlflow /health:', u.urlopen('http://127.0.0.1:5000/health').read().decode())"
  kubectl get --raw /apis/custom.metrics.k8s.io/v1beta1 >/dev/null && echo "custom metrics API: serving"
  echo "once the Triton chart runs in namespace serving:"
  echo "  kubectl get --raw '/apis/custom.metrics.k8s.io/v1beta1/namespaces/serving/pods/*/$TRITON_QUEUE_METRIC'"
}

main() {
  if [ $# -eq 0 ]; then
    usage
    exit 2
  fi
  need kubectl "https://kubernetes.io/docs/tasks/tools/, >= 1.31"
  local step
  for step in "$@"; do
    case "$step" in
      kind) step_kind ;;
      namespaces | 1) step_namespaces ;;
      pipelines | 2) step_pipelines ;;
      trainer | 3) step_trainer ;;
      minio | 4) step_minio ;;
      mlflow | 5) step_mlflow ;;
      monitoring | 6) step_monitoring ;;
      verify) step_verify ;;
      all)
        step_namespaces
        step_pipelines
        step_trainer
        step_minio
        step_mlflow
        step_monitoring
        step_verify
        ;;
      -h | --help | help) usage ;;
      *)
        usage >&2
        die "unknown step '$step'"
        ;;
    esac
  done
}

main "$@"
