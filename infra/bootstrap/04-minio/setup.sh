#!/bin/sh
# Runs in the minio-buckets Job (quay.io/minio/mc): buckets, policies and one user per consumer.
# Environment: MINIO_URL, MINIO_ROOT_USER/PASSWORD (Secret minio-root) and
# {MLFLOW,PIPELINES,TRITON}_ACCESS_KEY / _SECRET_KEY (Secret minio-users).
set -eu

until mc alias set omni "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1; do
  echo "waiting for MinIO at $MINIO_URL"
  sleep 5
done

for bucket in mlflow models; do
  mc mb --ignore-existing "omni/$bucket"
done

# attach POLICY USER: attaching an already attached policy is an error in mc; treat it as done.
attach() {
  if ! out=$(mc admin policy attach omni "$1" --user "$2" 2>&1); then
    case "$out" in
      *"already"*) ;;
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
}

# user NAME POLICY ACCESS_KEY SECRET_KEY
user() {
  mc admin policy create omni "$2" "/setup/$2.json"
  mc admin user add omni "$3" "$4"
  attach "$2" "$3"
  echo "user $1: policy $2"
}

user mlflow mlflow-rw "$MLFLOW_ACCESS_KEY" "$MLFLOW_SECRET_KEY"
user pipelines pipelines-rw "$PIPELINES_ACCESS_KEY" "$PIPELINES_SECRET_KEY"
user triton triton-ro "$TRITON_ACCESS_KEY" "$TRITON_SECRET_KEY"
echo "MinIO ready: buckets mlflow, models"
