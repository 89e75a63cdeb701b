"""What an SRE relies on in the rendered objects: hardening, probes, secrets, model control, scaling, rollouts."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from components.cluster.serving_rollout import REPOSITORY_ANNOTATION, VERSION_ANNOTATION
from components.deploy.config import DeployConfig
from tests.charts.rendering import FULLNAME, NAMESPACE, RELEASE, ci_scenarios, container, render

SCENARIOS = ci_scenarios()
SECRET_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "TRITON_RESTRICTED_API_VALUE"}


@pytest.fixture(scope="module")
def rendered():
    return render()


def args_of(rendered) -> list[str]:
    return container(rendered)["args"]


def flag(rendered, name: str) -> str:
    values = [a.split("=", 1)[1] for a in args_of(rendered) if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} appears {len(values)} times"
    return values[0]


# --- security ------------------------------------------------------------------------------------------------
def assert_hardened(pod_spec: dict) -> None:
    pod_sc = pod_spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 1000
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    for c in pod_spec["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_server_and_test_pods_are_hardened(scenario):
    rendered = render(SCENARIOS[scenario])
    assert_hardened(rendered.one("Deployment")["spec"]["template"]["spec"])
    for pod in rendered.all("Pod"):
        assert_hardened(pod["spec"])


def test_writable_paths_are_emptydirs(rendered):
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(rendered)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/dev/shm": "shm"}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "2Gi"
    env = {e["name"]: e.get("value") for e in container(rendered)["env"]}
    assert env["HOME"] == "/tmp"


# --- probes, ports ---------------------------------------------------------------------------------------------
def test_probes_hit_triton_health_endpoints(rendered):
    c = container(rendered)
    assert c["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    # The startup budget covers a slow model download: at least 5 minutes.
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 300
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert [flag(rendered, n) for n in ("http-port", "grpc-port", "metrics-port")] == ["8000", "8001", "8002"]


def test_service_exposes_the_three_ports_and_selects_only_triton(rendered):
    service = rendered.one("Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert selector == rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    # The helm test pod must not become an endpoint of the Service.
    test_pod = rendered.one("Pod")
    assert not selector.items() <= test_pod["metadata"]["labels"].items()


# --- model control, repository, secrets ------------------------------------------------------------------------
def test_explicit_model_control_loads_the_model(rendered):
    c = container(rendered)
    assert c["command"] == ["tritonserver"]
    assert flag(rendered, "model-control-mode") == "explicit"
    loaded = [a.split("=", 1)[1] for a in args_of(rendered) if a.startswith("--load-model=")]
    assert loaded == ["emotion_omni", "emotion_omni_stream"]  # and its streaming twin (gRPC streaming)
    assert [a for a in args_of(render({"model": {"streamName": ""}})) if a.startswith("--load-model=")] == [
        "--load-model=emotion_omni"
    ]
    assert flag(rendered, "strict-readiness") == "true"
    assert flag(rendered, "metrics-config") == "summary_latencies=true"


def test_model_repository_uri_serves_the_version(rendered):
    assert (
        flag(rendered, "model-repository")
        == "s3://http://minio.minio.svc.cluster.local:9000/models/emotion-omni/triton/1"
    )
    gpu = render(SCENARIOS["gpu-values.yaml"])
    assert flag(gpu, "model-repository") == "s3://https://minio.storage.example.com:9443/models/emotion-omni/triton/1"
    tls = render({"modelRepository": {"s3": {"tls": True, "prefix": ""}}, "model": {"version": 7}})
    assert flag(tls, "model-repository") == "s3://minio.minio.svc.cluster.local:9000/models/7"


def test_repository_api_is_restricted_on_http_and_grpc_with_a_secret_value(rendered):
    expected = "model-repository,shared-memory,trace,logging:triton-admin-key=$(TRITON_RESTRICTED_API_VALUE)"
    assert flag(rendered, "http-restricted-api") == expected
    assert flag(rendered, "grpc-restricted-protocol") == expected
    env = {e["name"]: e for e in container(rendered)["env"]}
    assert env["TRITON_RESTRICTED_API_VALUE"]["valueFrom"]["secretKeyRef"] == {
        "name": "omni-triton-secrets",
        "key": "TRITON_ADMIN_KEY",
    }


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_credentials_come_only_from_secret_key_refs(scenario):
    values = SCENARIOS[scenario]
    rendered = render(values)
    env = {e["name"]: e for e in container(rendered)["env"]}
    secret = values.get("modelRepository", {}).get("credentials", {}).get("existingSecret", "omni-triton-secrets")
    for name in SECRET_ENV:
        assert "value" not in env[name], f"{name} has a plaintext value"
        assert set(env[name]["valueFrom"]) == {"secretKeyRef"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert not rendered.all("Secret"), "the chart must never create a Secret holding credentials"
    assert "@" not in flag(rendered, "model-repository")


def test_gpu_limits_only_in_the_gpu_scenario():
    for scenario, values in SCENARIOS.items():
        c = container(render(values))
        env = {e["name"]: e.get("value") for e in c["env"]}
        gpus = c["resources"].get("limits", {}).get("nvidia.com/gpu")
        if scenario == "gpu-values.yaml":
            assert gpus == 1
            assert "NVIDIA_VISIBLE_DEVICES" not in env  # the device plugin sets it
        else:
            assert gpus is None, scenario
            assert env["NVIDIA_VISIBLE_DEVICES"] == "void", scenario
    gpu_pod = render(SCENARIOS["gpu-values.yaml"]).one("Deployment")["spec"]["template"]["spec"]
    assert gpu_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu_pod["tolerations"][0]["key"] == "nvidia.com/gpu"


# --- autoscaling -----------------------------------------------------------------------------------------------
def test_hpa_scales_on_queue_time_with_cpu_fallback(rendered):
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    pods, cpu = hpa["spec"]["metrics"]
    assert pods["type"] == "Pods"
    assert pods["pods"]["metric"]["name"] == "triton_queue_time_per_request_us"  # what the cluster's adapter serves
    assert pods["pods"]["target"] == {"type": "AverageValue", "averageValue": "100000"}
    assert cpu == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
    }
    # The HPA owns the replica count.
    assert "replicas" not in rendered.one("Deployment")["spec"]


def test_adapter_rule_serves_the_hpa_metric(rendered):
    (cm,) = [cm for cm in rendered.all("ConfigMap") if cm["metadata"]["name"].endswith("-adapter-rules")]
    rules = yaml.safe_load(cm["data"]["rules.yaml"])
    (rule,) = rules["rules"]
    assert rule["name"]["as"] == "triton_queue_time_per_request_us"
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert f'namespace="{NAMESPACE}"' in rule["seriesQuery"] and f'service="{FULLNAME}"' in rule["seriesQuery"]
    query = rule["metricsQuery"]
    assert "nv_inference_queue_duration_us{<<.LabelMatchers>>" in query
    assert "nv_inference_request_success{<<.LabelMatchers>>" in query


def test_without_autoscaling_the_deployment_sets_replicas():
    rendered = render(SCENARIOS["no-autoscaling-values.yaml"])
    assert rendered.one("Deployment")["spec"]["replicas"] == 3
    assert not rendered.all("HorizontalPodAutoscaler")
    assert not [cm for cm in rendered.all("ConfigMap") if cm["metadata"]["name"].endswith("-adapter-rules")]


def test_namespace_is_never_hard_coded():
    """Rendering into two namespaces gives the same text up to the namespace (and the dashboard uid derived
    from it): nothing points at a fixed namespace, and every object lands in the release's."""
    uid = re.compile(r'"uid": "omni-triton-[0-9a-f]+"')
    first, second = render(namespace="team-a-prod"), render(namespace="ml-blue")
    for path, text in first.manifests.items():
        expected = uid.sub("UID", text).replace("team-a-prod", "ml-blue")
        assert expected == uid.sub("UID", second.manifests[path]), path
    assert all(obj["metadata"]["namespace"] == "ml-blue" for obj in second.objects)
    text = "".join(second.manifests.values()) + second.notes
    named = set(re.findall(r'namespace[=:] ?"?([a-z0-9-]+)', text)) | set(re.findall(r" -n ([a-z0-9-]+)", text))
    assert named == {"ml-blue"}


# --- availability and rollouts ---------------------------------------------------------------------------------
def test_pdb_covers_the_triton_pods(rendered):
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"] == rendered.one("Deployment")["spec"]["selector"]
    gpu = render(SCENARIOS["gpu-values.yaml"]).one("PodDisruptionBudget")
    assert gpu["spec"]["minAvailable"] == 1 and "maxUnavailable" not in gpu["spec"]


def test_rolling_update_keeps_capacity_and_drains(rendered):
    spec = rendered.one("Deployment")["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert spec["minReadySeconds"] >= 5
    pod = spec["template"]["spec"]
    sleep = container(rendered)["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and int(sleep[1]) > 0
    exit_timeout = int(flag(rendered, "exit-timeout-secs"))
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) + exit_timeout


def test_the_deploy_step_waits_at_least_the_progress_deadline(rendered):
    """A deploy that gave up before Kubernetes does would roll back a rollout that is only slow."""
    deadline = rendered.one("Deployment")["spec"]["progressDeadlineSeconds"]
    assert DeployConfig().rollout_timeout_s >= deadline


def pod_template(rendered) -> dict:
    return rendered.one("Deployment")["spec"]["template"]


def test_a_version_change_renders_exactly_what_the_deploy_step_patches():
    """The deploy step moves versions by patching the --model-repository arg and two annotations
    (components/cluster/serving_rollout.py); that is all a new model.version changes, so the patched Deployment is
    the one `helm upgrade --set model.version=N` would render."""
    v1, v7 = pod_template(render({"model": {"version": 1}})), pod_template(render({"model": {"version": 7}}))
    base = flag(render(), "model-repository").rsplit("/", 1)[0]
    patched = copy.deepcopy(v1)
    (index,) = [
        i for i, a in enumerate(patched["spec"]["containers"][0]["args"]) if a.startswith("--model-repository=")
    ]
    patched["spec"]["containers"][0]["args"][index] = f"--model-repository={base}/7"
    patched["metadata"]["annotations"] |= {
        VERSION_ANNOTATION: "7",
        REPOSITORY_ANNOTATION: f"{base}/7",
    }
    assert patched == v7


def test_model_version_change_rolls_the_pods_and_nothing_else_does():
    v1, v2 = render({"model": {"version": 1}}), render({"model": {"version": 2}})
    assert pod_template(v1) != pod_template(v2)
    assert pod_template(v2)["metadata"]["annotations"]["empathy-omni.github.io/model-version"] == "2"
    assert flag(v2, "model-repository").endswith("/triton/2")
    assert v1.one("Deployment")["spec"]["selector"] == v2.one("Deployment")["spec"]["selector"]
    # Alert thresholds and dashboards do not touch the pod template: no needless restarts (and model reloads).
    tuned = render({"prometheusRule": {"thresholds": {"errorRatio": 0.2}}, "dashboard": {"enabled": False}})
    assert pod_template(tuned) == pod_template(v1)


# --- network ---------------------------------------------------------------------------------------------------
def test_network_policy_limits_ingress_and_egress(rendered):
    policy = rendered.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"] == rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    clients, tests, metrics, deployer = policy["ingress"]
    assert [p["port"] for p in clients["ports"]] == ["http", "grpc"] and clients["from"] == [{"podSelector": {}}]
    assert tests["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "test",
    }
    assert tests["from"][0]["podSelector"]["matchLabels"].items() <= rendered.one("Pod")["metadata"]["labels"].items()
    assert metrics == {
        "ports": [{"port": "metrics", "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }
    # The pipeline's deploy step, for its smoke request after each rollout (serving/deploy_cluster.py).
    assert deployer == {
        "ports": [{"port": "http", "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}],
    }
    store, dns = policy["egress"]
    assert store["ports"] == [{"port": 9000, "protocol": "TCP"}]
    assert store["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}}}]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    gpu_store = render(SCENARIOS["gpu-values.yaml"]).one("NetworkPolicy")["spec"]["egress"][0]
    assert gpu_store["ports"] == [{"port": 9443, "protocol": "TCP"}]


def test_the_deploy_steps_namespace_is_a_value_and_empty_admits_none():
    rule = render({"networkPolicy": {"deployer": {"namespace": "team-ml"}}}).one("NetworkPolicy")["spec"]["ingress"][3]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-ml"}}}]
    off = render({"networkPolicy": {"deployer": {"namespace": ""}}})
    assert [r["from"][0] for r in off.one("NetworkPolicy")["spec"]["ingress"]][2:] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert 'networkPolicy.deployer.namespace is "": the NetworkPolicy admits no deploy step' in off.notes
    assert "admits no deploy step" not in render().notes


# --- monitoring ------------------------------------------------------------------------------------------------
def test_service_monitor_scrapes_the_metrics_port(rendered):
    monitor = rendered.one("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= rendered.one("Service")["metadata"]["labels"].items()
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "15s", "scrapeTimeout": "10s"}
    ]


def test_prometheus_rule_has_the_alerts_with_thresholds_from_values():
    rules = render({"prometheusRule": {"thresholds": {"errorRatio": 0.1, "latencyP95Ms": 1500}}}).one("PrometheusRule")[
        "spec"
    ]["groups"][0]["rules"]
    by_name = {r["alert"]: r for r in rules}
    assert set(by_name) == {
        "EmotionOmniHighErrorRatio",
        "EmotionOmniHighLatencyP95",
        "EmotionOmniHighQueueTime",
        "EmotionOmniPendingRequests",
        "EmotionOmniNoReadyReplicas",
    }
    assert by_name["EmotionOmniHighErrorRatio"]["expr"].rstrip().endswith("> 0.1")
    assert by_name["EmotionOmniHighLatencyP95"]["expr"].rstrip().endswith("> 1500")
    assert 'quantile="0.95"' in by_name["EmotionOmniHighLatencyP95"]["expr"]
    assert "kube_deployment_status_replicas_available" in by_name["EmotionOmniNoReadyReplicas"]["expr"]
    assert all(r["labels"]["severity"] in {"warning", "critical"} for r in rules)


def test_dashboard_configmap_has_real_panels(rendered):
    (cm,) = [cm for cm in rendered.all("ConfigMap") if cm["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"][f"{FULLNAME}.json"])
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "requests by outcome",
        "error ratio",
        "latency",
        "queue time",
        "pending",
        "replicas",
        "whole-reply latency",
        "audio",
        "reply emotions",
        "first audio (streaming)",
    ):
        assert topic in titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert all(f'namespace="{NAMESPACE}"' in e for e in exprs)
    assert "<<" not in cm["data"][f"{FULLNAME}.json"]


def test_the_models_own_series_in_alerts_and_dashboard_are_the_ones_it_exports(rendered):
    """The emotion_omni_* names the chart reads are contracts.py's, which model.py registers (a real tritonserver
    test scrapes them: tests/serving/test_triton_emotion_omni.py)."""
    from components import contracts as c

    exported = {
        c.METRIC_REQUESTS,
        c.METRIC_AUDIO_SECONDS,
        c.METRIC_REPLY_EMOTIONS,
        *(
            name + suffix
            for name in (c.METRIC_REPLY_SECONDS, c.METRIC_FIRST_AUDIO_SECONDS)
            for suffix in ("_bucket", "_sum", "_count")
        ),
    }
    rules = json.dumps(rendered.one("PrometheusRule"))
    (dashboard,) = [cm for cm in rendered.all("ConfigMap") if cm["metadata"]["name"].endswith("-dashboard")]
    used = set(re.findall(r"\b(emotion_omni_[a-z_]+)\{", rules + json.dumps(dashboard)))  # names, not label values
    assert {c.METRIC_REQUESTS, f"{c.METRIC_REPLY_SECONDS}_bucket"} <= used <= exported
    rule = next(
        r
        for g in rendered.one("PrometheusRule")["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "EmotionOmniHighErrorRatio"
    )
    assert f"{c.METRIC_REQUESTS}{{" in rule["expr"] and f'outcome="{c.OUTCOME_ERROR}"' in rule["expr"]


# --- helm test and NOTES ---------------------------------------------------------------------------------------
def test_helm_test_pod_checks_server_and_model_readiness(rendered):
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    compile(script, "test-connection", "exec")  # the embedded Python is valid
    assert f"http://{FULLNAME}.{NAMESPACE}.svc:8000" in script
    assert '"/v2/health/ready", 200' in script and '"/v2/models/emotion_omni/ready", 200' in script
    assert '"/v2/repository/index", 403' in script
    assert pod["spec"]["restartPolicy"] == "Never"


def test_notes_print_runnable_commands(rendered):
    notes = rendered.notes
    assert f"kubectl -n {NAMESPACE} port-forward service/{FULLNAME} 8000:8000" in notes
    assert "curl -fsS http://127.0.0.1:8000/v2/health/ready" in notes
    assert "omni chat --url 127.0.0.1:8000" in notes
    assert f"helm rollback {RELEASE} <REVISION> -n {NAMESPACE}" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    # Versions move by the deploy step's patch: the RBAC it needs, how to read the served version and carry it.
    assert f"kubectl apply -n {NAMESPACE} -f pipelines/rbac/serving-deployer.yaml" in notes
    served = (
        f"kubectl -n {NAMESPACE} get deployment {FULLNAME} -o jsonpath="
        "'{.spec.template.metadata.annotations.empathy-omni\\.github\\.io/model-version}'"
    )
    assert f"--set model.version=$({served})" in notes
    assert f"kubectl -n {NAMESPACE} rollout undo deployment/{FULLNAME}" in notes


@pytest.mark.parametrize(
    "resources, cpus",
    [
        ({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}, "2"),  # the default: request
        ({"requests": {"cpu": "500m", "memory": "4Gi"}, "limits": {"cpu": "1500m", "memory": "8Gi"}}, "2"),  # limit
        ({"requests": {"cpu": 3, "memory": "4Gi"}, "limits": {"cpu": 2.5, "memory": "8Gi"}}, "3"),
        ({"requests": {"cpu": "100m", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}, "1"),
    ],
)
def test_torch_threads_follow_the_pods_cpu(resources, cpus):
    """OMNI_CPUS tells components/cpu.py how many cores the pod was granted: its limit, else its request."""
    deployment = render({"resources": resources, "autoscaling": {"enabled": False}}).one("Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OMNI_CPUS"] == cpus
