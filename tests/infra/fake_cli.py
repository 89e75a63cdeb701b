"""Recorded stand-ins for kubectl, helm, helmfile, kind, docker, openssl and sleep, run by bootstrap.sh under test
(and for mc, run by the MinIO setup script).

    python -SE fake_cli.py STATE_DIR TOOL ARG...

Every call appends one JSON line to STATE_DIR/calls.jsonl (tool, argv, argv less kubectl's -n and that
namespace, a piped manifest, the Secrets and namespaces that existed when it ran) and answers from
STATE_DIR/state.json, a tiny cluster model that tests/infra/recorded_cluster.py writes and reads: namespaces,
Secrets, applied objects, kind clusters, local images. It models what bootstrap.sh relies on the API server
for, and no more:
- a namespaced `apply` or `create secret` into a namespace that does not exist fails, as the API server's does;
- `create secret` of an existing Secret fails with AlreadyExists; `get secret -o jsonpath={.data.KEY}` answers
  the base64 value, as kubectl does;
- `apply -k DIR` accepts only the kustomization directories the harness describes (with the namespaces and
  objects each creates), and `apply -f FILE` only files that exist;
- a verb or command it does not model fails loudly, so a new call in the script cannot pass unexamined.
Run with -S (no site-packages, stdlib only): the script under test calls it some fifty times per run.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import sys

STATE_DIR, TOOL, ARGS = sys.argv[1], sys.argv[2], sys.argv[3:]
STATE = os.path.join(STATE_DIR, "state.json")


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def split_namespace(args: list[str]) -> tuple[str | None, list[str]]:
    """(the -n/--namespace value, the other arguments), wherever kubectl's global flag appears."""
    namespace, rest, i = None, [], 0
    while i < len(args):
        if args[i] in ("-n", "--namespace"):
            namespace, i = args[i + 1], i + 2
        elif args[i].startswith("--namespace="):
            namespace, i = args[i].split("=", 1)[1], i + 1
        else:
            rest.append(args[i])
            i += 1
    return namespace, rest


def flag(args: list[str], name: str) -> str | None:
    """The value of `name VALUE` or `name=VALUE` in args."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def require_namespace(state: dict, namespace: str | None) -> None:
    if namespace and namespace not in state["namespaces"]:
        fail(f'Error from server (NotFound): namespaces "{namespace}" not found')


def kubectl(state: dict, namespace: str | None, args: list[str], stdin: str | None) -> None:
    verb = args[0] if args else ""
    if verb == "apply":
        directory, manifest = flag(args, "-k"), flag(args, "-f")
        if directory:
            kustomization = state["kustomizations"].get(os.path.realpath(directory))
            if kustomization is None:
                fail(f"error: unable to find one of 'kustomization.yaml' in directory '{directory}'")
            created = kustomization["creates_namespaces"]
            if kustomization["namespace"] not in created:
                require_namespace(state, kustomization["namespace"])
            state["namespaces"] = sorted(set(state["namespaces"]) | set(created))
            state["objects"] = sorted(set(state["objects"]) | set(kustomization["objects"]))
        elif manifest == "-":
            require_namespace(state, namespace)
            obj = json.loads(stdin or "null")
            if not isinstance(obj, dict) or "kind" not in obj:
                fail("error: no objects passed to apply")
            state["objects"] = sorted(set(state["objects"]) | {f"{obj['kind']}/{obj['metadata']['name']}"})
        elif manifest:
            require_namespace(state, namespace)
            if not os.path.isfile(manifest):
                fail(f'error: the path "{manifest}" does not exist')
        else:
            fail("error: must specify one of -f and -k")
        return
    if verb == "get":
        what = args[1] if len(args) > 1 else ""
        if what == "--raw":
            if state["raw_failures"] > 0:
                state["raw_failures"] -= 1
                fail("Error from server (ServiceUnavailable): the server is currently unable to handle the request")
            print("{}")
        elif what == "namespace":
            if args[2] not in state["namespaces"]:
                fail(f'Error from server (NotFound): namespaces "{args[2]}" not found')
        elif what == "secret":
            secret = state["secrets"].get(f"{namespace}/{args[2]}")
            if secret is None:
                fail(f'Error from server (NotFound): secrets "{args[2]}" not found')
            output = flag(args, "-o") or ""
            if output.startswith("jsonpath={.data.") and output.endswith("}"):
                value = secret.get(output[len("jsonpath={.data.") : -1])
                if value is not None:
                    sys.stdout.write(base64.b64encode(value.encode()).decode())
        elif what == "clustertrainingruntime":
            if f"ClusterTrainingRuntime/{args[2]}" not in state["objects"]:
                fail(f'Error from server (NotFound): clustertrainingruntimes "{args[2]}" not found')
        else:
            fail(f"fake kubectl: `get {what}` is not modelled")
        return
    if verb == "create" and args[1:3] == ["secret", "generic"]:
        name = args[3]
        require_namespace(state, namespace)
        if f"{namespace}/{name}" in state["secrets"]:
            fail(f'error: failed to create secret secrets "{name}" already exists')
        pairs = [arg.split("=", 1)[1] for arg in args[4:] if arg.startswith("--from-literal=")]
        state["secrets"][f"{namespace}/{name}"] = dict(pair.split("=", 1) for pair in pairs)
        return
    if verb == "create" and args[1] == "rolebinding" and flag(args, "--dry-run") == "client":
        account_namespace, account = flag(args, "--serviceaccount").split(":")
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": args[2], "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": flag(args, "--role")},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
        }
        print(json.dumps(binding))  # JSON is YAML: what `-o yaml` would pipe to `kubectl apply -f -`
        return
    if verb in ("wait", "rollout", "delete", "exec") or args[:2] == ["config", "use-context"]:
        return  # nothing to model: the workloads are assumed to become ready
    fail(f"fake kubectl: `{' '.join(args[:3])}` is not modelled")


def kind(state: dict, args: list[str]) -> None:
    if args[:2] == ["get", "clusters"]:
        print("\n".join(state["clusters"]))
    elif args[:2] == ["create", "cluster"]:
        config = flag(args, "--config")
        if not config or not os.path.isfile(config):
            fail(f"ERROR: failed to read config file {config}")
        state["clusters"].append(flag(args, "--name"))
    elif args[:2] == ["load", "docker-image"]:
        if args[2] not in state["images"]:
            fail(f"ERROR: image: {args[2]!r} not present locally")
    else:
        fail(f"fake kind: `{' '.join(args[:2])}` is not modelled")


def mc(state: dict, args: list[str]) -> None:
    """MinIO's client as infra/bootstrap/04-minio/setup.sh uses it; `/setup/...` paths are read from the
    directory state["mount"] (where the test put the minio-setup ConfigMap's files)."""
    if args[:2] == ["alias", "set"]:
        if state["unreachable"] > 0:
            state["unreachable"] -= 1
            fail(f"mc: <ERROR> Unable to initialize new alias from the provided credentials. dial tcp {args[3]}")
        state["alias"] = {"url": args[3], "user": args[4], "password": args[5]}
    elif not state.get("alias"):
        fail("mc: <ERROR> Unable to get alias: omni is not configured")
    elif args[:2] == ["mb", "--ignore-existing"]:
        state["buckets"] = sorted(set(state["buckets"]) | {args[2].split("/", 1)[1]})
    elif args[:3] == ["admin", "policy", "create"]:
        path = os.path.join(state["mount"], os.path.relpath(args[5], "/setup"))
        if not args[5].startswith("/setup/") or not os.path.isfile(path):
            fail(f"mc: <ERROR> Unable to read the policy document {args[5]}: no such file")
        with open(path) as f:
            state["policies"][args[4]] = json.load(f)
    elif args[:3] == ["admin", "user", "add"]:
        state["users"][args[4]] = args[5]
    elif args[:3] == ["admin", "policy", "attach"] and args[5] == "--user":
        policy, user = args[4], args[6]
        if policy not in state["policies"] or user not in state["users"]:
            fail(f"mc: <ERROR> Unable to attach policy {policy} to {user}: no such policy or user")
        if state["attach_error"]:
            fail(f"mc: <ERROR> Unable to attach the policy: {state['attach_error']}")
        if policy in state["attached"].get(user, []):
            fail("mc: <ERROR> Unable to attach the policy: The specified policy change is already in effect.")
        state["attached"].setdefault(user, []).append(policy)
    else:
        fail(f"fake mc: `{' '.join(args[:3])}` is not modelled")


def main() -> None:
    # Read a piped manifest before taking the lock: the writer of the pipe may be waiting for the lock itself.
    stdin = sys.stdin.read() if TOOL == "kubectl" and flag(ARGS, "-f") == "-" else None
    namespace, args = split_namespace(ARGS) if TOOL == "kubectl" else (None, ARGS)
    with open(os.path.join(STATE_DIR, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(STATE) as f:
            state = json.load(f)
        call = {
            "tool": TOOL,
            "argv": ARGS,
            "args": args,
            "namespace": namespace,
            "stdin": stdin,
            "secrets": sorted(state.get("secrets", {})),
            "namespaces": state.get("namespaces", []),
        }
        with open(os.path.join(STATE_DIR, "calls.jsonl"), "a") as record:
            record.write(json.dumps(call) + "\n")
        try:
            if TOOL == "kubectl":
                kubectl(state, namespace, args, stdin)
            elif TOOL == "kind":
                kind(state, args)
            elif TOOL == "mc":
                mc(state, args)
            elif TOOL == "docker":
                if args[:2] != ["image", "inspect"]:
                    fail(f"fake docker: `{' '.join(args[:2])}` is not modelled")
                if args[2] not in state["images"]:
                    fail(f"Error: No such image: {args[2]}")
            elif TOOL == "openssl":
                if args[:2] != ["rand", "-hex"]:
                    fail(f"fake openssl: `{' '.join(args[:2])}` is not modelled")
                print(os.urandom(int(args[2])).hex())
            elif TOOL == "helmfile":
                if not os.path.isfile(flag(args, "--file") or "") or args[-1] != "sync":
                    fail(f"fake helmfile: `{' '.join(args)}` is not modelled")
            # helm (only looked up by `need`) and sleep (the retry loop's wait) just record and succeed.
        finally:
            with open(STATE + ".tmp", "w") as f:
                json.dump(state, f)
            os.replace(STATE + ".tmp", STATE)


if __name__ == "__main__":
    main()
