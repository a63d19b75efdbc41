"""The Kubernetes manifests, rendered by `kubectl kustomize` (tests/deploy_files.py),
validate against the Kubernetes and KEDA schemas (vendored); queues, grace periods,
secrets and the worker pods' network agree with the code.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from core.contracts import queues
from core.contracts.gpu_profiles import ESCALATION
from tests.deploy_files import (
    BASE,
    CODE_NAMES,
    DEPLOY,
    GPU_CLASSES,
    K8S_SCHEMAS,
    RENDERED,
    SCHEMAS,
    SECRETISH,
    WORKER_ENV,
    by_kind,
    compose,
    effective_env,
    read_env_file,
    settings_from,
)


def _strict(schema):
    """CRD openAPIV3Schema -> JSON Schema as the API server's strict field validation
    applies it: unknown fields are errors."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def validator_for(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    if api_version == "keda.sh/v1alpha1":
        crd = yaml.safe_load((SCHEMAS / "keda" / f"{kind.lower()}-v1alpha1.yaml").read_text())
        return jsonschema.Draft202012Validator(_strict(crd))
    if api_version == "monitoring.coreos.com/v1":
        crd = yaml.safe_load((SCHEMAS / "prometheus-operator" / f"{kind.lower()}-v1.yaml").read_text())
        return jsonschema.Draft202012Validator(_strict(crd))
    group = api_version.split("/")[0] if "/" in api_version else ""
    name = f"{kind.lower()}-{group.split('.')[0] + '-' if group else ''}{api_version.split('/')[-1]}.json"
    path = K8S_SCHEMAS / name
    assert path.exists(), (
        f"no vendored schema for {api_version} {kind} ({name}): add it in deploy/schemas/vendor_schemas.py"
    )
    definitions = json.loads((K8S_SCHEMAS / "_definitions.json").read_text())
    schema = json.loads(path.read_text())
    registry = Registry().with_resources([(definitions["$id"], Resource.from_contents(definitions))])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(doc: dict) -> list[str]:
    validator = validator_for(doc["kind"], doc["apiVersion"])
    return [
        f"{doc['kind']}/{doc['metadata']['name']} {'/'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_manifests_validate_against_kubernetes_and_keda_schemas(variant):
    docs = RENDERED[variant]
    kinds = {"Namespace", "ConfigMap", "Deployment", "ScaledObject", "NetworkPolicy"}
    assert {d["kind"] for d in docs} >= kinds
    errors = [error for doc in docs for error in schema_errors(doc)]
    assert not errors, "\n".join(errors)
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "podcast", f"{doc['kind']}/{doc['metadata']['name']}"


def test_schema_checks_can_fail():
    deployment = copy.deepcopy(by_kind(RENDERED["base"], "Deployment")["podcast-worker-t4"])
    deployment["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "45"
    assert len(schema_errors(deployment)) >= 2
    scaled = copy.deepcopy(by_kind(RENDERED["base"], "ScaledObject")["podcast-worker-t4"])
    scaled["spec"]["triggers"][0]["metadata"]["targetQueueSize"] = 2  # must be a string
    scaled["spec"]["maxReplicas"] = 3  # unknown field
    del scaled["spec"]["scaleTargetRef"]
    assert len(schema_errors(scaled)) >= 3
    policy = copy.deepcopy(by_kind(RENDERED["base"], "NetworkPolicy")["podcast-worker"])
    policy["spec"]["policyTypes"] = "Egress"  # must be a list
    policy["spec"]["egress"][0]["ports"][0]["port"] = [53]  # a number or a name
    policy["spec"]["ingress"][0]["from"][0]["namespaceSelektor"] = {}  # unknown field
    assert len(schema_errors(policy)) >= 3


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def assert_resources_hold_the_work(pod: dict, settings) -> None:
    """The pod asks for what its model slots were measured to need, and its limit (what
    the worker sizes its slots from) holds all of them: it serves every slot. It asks for
    its scratch disk too (issue 30: a sizeLimit alone let pods land on nodes without it)."""
    from core.contracts.gpu_profiles import host_memory_mib, profile_for, slots_that_fit

    slots = profile_for(settings.worker_gpu_class).gpu_slots
    resources = pod["containers"][0]["resources"]
    (scratch,) = [v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "scratch"]
    assert resources["requests"]["ephemeral-storage"] == scratch, "the scheduler places the scratch disk"
    assert mebibytes(resources["requests"]["memory"]) >= host_memory_mib(slots)
    assert slots_that_fit(mebibytes(resources["limits"]["memory"]), slots) == slots


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_gpu_deployments_one_per_class_drain_before_kill(variant):
    docs = RENDERED[variant]
    deployments = by_kind(docs, "Deployment")
    for cls in GPU_CLASSES:
        deployment = deployments[f"podcast-worker-{cls}"]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = effective_env(deployment, docs)
        settings = settings_from(env)
        assert settings.worker_gpu_class == cls and settings.serve_cpu_queues is False
        assert pod["terminationGracePeriodSeconds"] > settings.graceful_shutdown_s, cls
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert_resources_hold_the_work(pod, settings)
        assert pod["nodeSelector"] == {"podcast-speech/gpu-class": cls}
        assert {
            "key": "kubernetes.azure.com/scalesetpriority",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        } in pod["tolerations"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert "podcast-worker-gpu" in container["image"]
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    for source, target in ESCALATION.items():
        if target:
            assert f"podcast-worker-{target}" in deployments, (
                f"videos escalated from {source} would wait forever"
            )


def _trigger_meta(scaled: dict) -> list[dict]:
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "temporal"
    return [t["metadata"] for t in scaled["spec"]["triggers"]]


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_scaled_objects_watch_the_queues_the_workers_poll(variant):
    docs = RENDERED[variant]
    deployments = by_kind(docs, "Deployment")
    scaled_objects = by_kind(docs, "ScaledObject")
    assert set(scaled_objects) == set(deployments) - {"podcast-worker-claims"}  # one pod, not scaled
    auths = by_kind(docs, "TriggerAuthentication")
    for name, scaled in scaled_objects.items():
        deployment = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        settings = settings_from(effective_env(deployment, docs))
        prefix, cls = settings.task_queue_prefix, settings.worker_gpu_class
        expected = {(queues.gpu_queue(prefix, cls), "activity")}
        if settings.serve_cpu_queues:  # the workflow queue also carries the short CPU activities
            expected = {
                (queues.download_queue(prefix), "activity"),
                (queues.workflow_queue(prefix), "activity"),
                (queues.workflow_queue(prefix), "workflow"),
            }
        metas = _trigger_meta(scaled)
        assert sorted((m["taskQueue"], m["queueTypes"]) for m in metas) == sorted(expected), name
        for meta, trigger in zip(metas, scaled["spec"]["triggers"]):
            assert (
                meta["endpoint"] == settings.temporal_address
                and meta["namespace"] == settings.temporal_namespace
            )
            assert int(meta["targetQueueSize"]) > 0 and int(meta["activationTargetQueueSize"]) >= 0
            if "authenticationRef" in trigger:
                auth = auths[trigger["authenticationRef"]["name"]]
                assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"apiKey"}
        assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"] >= 0


def test_cpu_deployment_serves_the_cpu_queues():
    docs = RENDERED["base"]
    deployment = by_kind(docs, "Deployment")["podcast-worker-cpu"]
    settings = settings_from(effective_env(deployment, docs))
    assert settings.serve_cpu_queues and settings.worker_gpu_class == "cpu"
    assert_resources_hold_the_work(deployment["spec"]["template"]["spec"], settings)
    assert settings.download_rate_per_s and settings.download_rate_per_s > 0, (
        "the fleet-wide download limit is set"
    )
    assert (
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > settings.graceful_shutdown_s
    )


# The claim index's peak over its keys while it grows (benchmarks.duplicates
# --index-videos 340000: 3,928 MiB of keys, peak +7.9 GiB), and the corpus it must hold.
INDEX_PEAK_OVER_KEYS = 2.0
CORPUS_VIDEOS, EPISODE_MIN = 340_000, 50


def claim_index_mib() -> float:
    """The claim index's peak at corpus scale, from the keys real code keeps per episode."""
    import numpy as np

    from core.corpus.audio_index import AudioIndex, index_keys
    from core.corpus.fingerprints import ITEM_S, Fingerprint

    rng = np.random.default_rng(0)
    index = AudioIndex()
    for i in range(20):
        items = rng.integers(0, 2**32, round(EPISODE_MIN * 60 / ITEM_S), dtype=np.uint64)
        index.add(f"v{i}", index_keys(Fingerprint(items.astype(np.uint32))))
    index.candidates(np.zeros(1, np.uint32))  # merges what was added
    return index.memory_bytes() / 20 * CORPUS_VIDEOS * INDEX_PEAK_OVER_KEYS / 2**20


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_one_unscaled_deployment_claims_audio_and_has_the_memory_for_the_index(variant):
    docs = RENDERED[variant]
    deployments = by_kind(docs, "Deployment")
    claiming = {
        name
        for name, deployment in deployments.items()
        if (settings := settings_from(effective_env(deployment, docs))).serve_cpu_queues
        and settings.serve_claims
    }
    assert claiming == {"podcast-worker-claims"}, "the scaled CPU pods must not each keep an index"
    claims, cpu = deployments["podcast-worker-claims"], deployments["podcast-worker-cpu"]
    assert claims["spec"]["replicas"] == 1
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in by_kind(docs, "ScaledObject").values()}
    assert "podcast-worker-cpu" in scaled and "podcast-worker-claims" not in scaled
    limit = {
        name: mebibytes(d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])
        for name, d in (("claims", claims), ("cpu", cpu))
    }
    assert limit["claims"] - limit["cpu"] >= claim_index_mib(), limit


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_manifests_reference_secrets_and_name_only_real_settings(variant):
    docs = RENDERED[variant]
    config = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]
    assert not [k for k in config if SECRETISH.search(k)], "secrets belong in the Secret, not the ConfigMap"
    assert not set(config) - CODE_NAMES, f"ConfigMap keys the code never reads: {set(config) - CODE_NAMES}"
    for deployment in by_kind(docs, "Deployment").values():
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            assert item["name"] in CODE_NAMES, f"{item['name']} is not read by the code"
            if SECRETISH.search(item["name"]):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                assert ref and ref["name"] == "podcast-worker-secrets" and "value" not in item, item["name"]
                if item["name"].startswith("PIPELINE_S3_"):
                    assert not ref.get("optional"), (
                        f"{item['name']} is required: a worker without it cannot store"
                    )


def test_generated_gpu_manifests_are_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_k8s_generate", DEPLOY / "k8s" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    rendered = generate.render()
    assert {p.name for p in rendered} == {f"worker-gpu-{c}.yaml" for c in GPU_CLASSES}
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run python deploy/k8s/generate.py"
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk, "every manifest in base/ is listed in kustomization.yaml"


NON_PUBLIC = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
]


METADATA = "169.254.169.254/32"


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _matches(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _namespace_of(peer: dict) -> str | None:
    return peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")


def _is_public_block(peer: dict) -> bool:
    import ipaddress

    block = peer.get("ipBlock")
    if not block or block["cidr"] != "0.0.0.0/0":
        return False
    excepted = [ipaddress.ip_network(c) for c in block.get("except", [])]
    return all(any(ipaddress.ip_network(r).subnet_of(e) for e in excepted) for r in NON_PUBLIC)


def network_policy_problems(docs: list[dict]) -> list[str]:
    """What is wrong with the worker pods' NetworkPolicies in these rendered manifests:
    a worker pod not selected, ingress beyond Prometheus on the metrics port, egress to
    anything but DNS, Temporal, public HTTP(S) and (GPU pods with an eviction notice) the
    metadata endpoint, or a destination the settings need that is not allowed."""
    problems: list[str] = []
    config = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]
    metrics_port = _port(config["PIPELINE_METRICS_ADDRESS"])
    temporal_host, temporal_port = config["PIPELINE_TEMPORAL_ADDRESS"].rsplit(":", 1)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    main = next((p for p in policies if p["metadata"]["name"] == "podcast-worker"), None)
    if main is None:
        return ["no NetworkPolicy podcast-worker"]
    if "app.kubernetes.io/name" not in main["spec"]["podSelector"].get("matchLabels", {}):
        problems.append("podcast-worker does not select by app.kubernetes.io/name (it selects other pods)")
    if set(main["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        problems.append(f"policyTypes {main['spec'].get('policyTypes')}: both directions must be restricted")
    for rule in main["spec"].get("ingress", []):
        peers = rule.get("from", [])
        if not peers or any(
            set(p) != {"namespaceSelector"} or _namespace_of(p) != "monitoring" for p in peers
        ):
            problems.append(f"ingress from {peers or 'anywhere'}: only the namespace monitoring")
        if rule.get("ports") != [{"protocol": "TCP", "port": metrics_port}]:
            problems.append(f"ingress ports {rule.get('ports')}: only the metrics port {metrics_port}")
    for policy in policies:
        if policy is not main and policy["spec"].get("ingress"):
            problems.append(f"{policy['metadata']['name']}: ingress belongs in podcast-worker")
    for name, deployment in by_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not _matches(main["spec"]["podSelector"], labels):
            problems.append(f"{name}: its pods are not selected by podcast-worker")
        settings = settings_from(effective_env(deployment, docs))
        allowed: list[tuple[dict, dict]] = []  # (peer, port) the pods may reach
        for policy in policies:
            spec = policy["spec"]
            if not _matches(spec["podSelector"], labels) or "Egress" not in spec["policyTypes"]:
                continue
            for rule in policy["spec"].get("egress", []):
                if not rule.get("to") or not rule.get("ports"):
                    problems.append(f"{policy['metadata']['name']}: egress without to or ports allows all")
                    continue
                allowed += [(peer, port) for peer in rule["to"] for port in rule["ports"]]

        def reaches(peer_ok, port: int, protocol: str = "TCP", allowed=allowed) -> bool:
            return any(
                peer_ok(peer) and p.get("port") == port and p.get("protocol", "TCP") == protocol
                for peer, p in allowed
            )

        for peer, port in allowed:
            where = f"{name}: egress to {peer} port {port.get('port')}"
            if "ipBlock" in peer:
                if peer["ipBlock"]["cidr"] == METADATA:
                    if settings.eviction_notice == "none" or port.get("port") != 80:
                        problems.append(f"{where}: the metadata endpoint only for an eviction notice, on 80")
                elif not _is_public_block(peer):
                    problems.append(f"{where}: public addresses must except {NON_PUBLIC}")
                elif port.get("port") not in {80, 443, int(temporal_port)}:
                    problems.append(f"{where}: to the internet only HTTP(S) (and Temporal's port)")
            elif _namespace_of(peer) == "kube-system":
                dns = peer.get("podSelector") == {"matchLabels": {"k8s-app": "kube-dns"}}
                if not dns or port.get("port") != 53:
                    problems.append(f"{where}: in kube-system only the DNS pods on 53")
            elif _namespace_of(peer) == "temporal":
                if port.get("port") != int(temporal_port):
                    problems.append(f"{where}: Temporal's namespace only on its frontend port")
            else:
                problems.append(f"{where}: not a destination the workers need")
        for protocol in ("UDP", "TCP"):
            if not reaches(lambda p: _namespace_of(p) == "kube-system", 53, protocol):
                problems.append(f"{name}: no DNS over {protocol}")
        if temporal_host.endswith((".svc", ".svc.cluster.local")):
            ok = reaches(lambda p: _namespace_of(p) == temporal_host.split(".")[1], int(temporal_port))
        else:
            ok = reaches(_is_public_block, int(temporal_port))
        if not ok:
            problems.append(f"{name}: cannot reach Temporal at {config['PIPELINE_TEMPORAL_ADDRESS']}")
        storage = urllib.parse.urlsplit(settings.s3_endpoint_url)
        storage_port = storage.port or (443 if storage.scheme == "https" else 80)
        for port, what in (
            (storage_port, f"storage {settings.s3_endpoint_url}"),
            (443, "HTTPS sources"),
            (80, "HTTP sources"),
        ):
            if not reaches(_is_public_block, port):
                problems.append(f"{name}: cannot reach {what}")
        metadata_ok = reaches(lambda p: p.get("ipBlock", {}).get("cidr") == METADATA, 80)
        if settings.eviction_notice != "none" and not metadata_ok:
            problems.append(f"{name}: cannot read its eviction notice ({settings.eviction_notice})")
    return problems


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_network_policy_lets_the_workers_reach_only_what_they_need(variant):
    assert network_policy_problems(RENDERED[variant]) == []


def test_network_policy_check_fails_on_the_ways_a_policy_goes_wrong():
    def broken(change) -> list[str]:
        docs = copy.deepcopy(RENDERED["base"])
        change({d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"})
        return network_policy_problems(docs)

    def drop_policy(p):
        p["podcast-worker"]["metadata"]["name"] = "renamed"

    def allow_all_egress(p):
        p["podcast-worker"]["spec"]["egress"].append({})

    def any_port_to_the_internet(p):
        del p["podcast-worker"]["spec"]["egress"][2]["ports"]

    def no_except(p):
        p["podcast-worker"]["spec"]["egress"][2]["to"][0]["ipBlock"].pop("except")

    def select_other_pods(p):
        p["podcast-worker"]["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "other"}}

    def ingress_only(p):
        p["podcast-worker"]["spec"]["policyTypes"] = ["Ingress"]

    def ingress_from_anywhere(p):
        p["podcast-worker"]["spec"]["ingress"][0]["from"] = []

    def ingress_on_another_port(p):
        p["podcast-worker"]["spec"]["ingress"][0]["ports"][0]["port"] = 8080

    def metadata_for_every_worker(p):
        selector = p["podcast-worker-eviction-notice"]["spec"]["podSelector"]
        selector["matchLabels"].pop("app.kubernetes.io/component")

    def no_temporal(p):
        del p["podcast-worker"]["spec"]["egress"][1]

    def no_dns(p):
        del p["podcast-worker"]["spec"]["egress"][0]

    def no_eviction_notice(p):
        p["podcast-worker-eviction-notice"]["spec"]["egress"] = []

    for change in (
        drop_policy,
        allow_all_egress,
        any_port_to_the_internet,
        no_except,
        select_other_pods,
        ingress_only,
        ingress_from_anywhere,
        ingress_on_another_port,
        metadata_for_every_worker,
        no_temporal,
        no_dns,
        no_eviction_notice,
    ):
        assert broken(change), f"{change.__name__} passed the check"


def _access_section() -> str:
    text = (DEPLOY / "README.md").read_text()
    assert "\n## Access\n" in text, "deploy/README.md has no Access section"
    return text.split("\n## Access\n", 1)[1].split("\n## ", 1)[0]


def test_metrics_listen_only_where_deploy_readme_says():
    """Every deploy file's PIPELINE_METRICS_ADDRESS is one deploy/README.md ("Access")
    documents, and what exposes the port matches its table: compose publishes nothing,
    pods open it only to the monitoring namespace (the policy test), a VM publishes it on
    its private address only, Runpod pods (on the internet) serve none."""
    metrics = _access_section().split("**Metrics.**", 1)[1].split("\n**", 1)[0]
    documented = set(re.findall(r"`(\d+\.\d+\.\d+\.\d+:\d+)`", metrics))
    assert documented == {"0.0.0.0:9464"}, documented
    cloud_init = yaml.safe_load((DEPLOY / "clouds" / "azure-cloud-init.yaml").read_text())
    files = {f["path"]: f["content"] for f in cloud_init["write_files"]}
    found = {
        "deploy/worker.env": read_env_file(WORKER_ENV).get("PIPELINE_METRICS_ADDRESS"),
        "azure-cloud-init worker.env": dict(
            line.split("=", 1) for line in files["/etc/podcast/worker.env"].splitlines() if "=" in line
        ).get("PIPELINE_METRICS_ADDRESS"),
    }
    for variant, docs in RENDERED.items():
        config = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]
        found[f"k8s {variant}"] = config["PIPELINE_METRICS_ADDRESS"]
    services = compose()["services"]
    for name in ("worker-cpu", "worker-gpu"):
        env = {**read_env_file(WORKER_ENV), **services[name]["environment"]}
        found[f"compose {name}"] = env.get("PIPELINE_METRICS_ADDRESS")
    undocumented = {where: value for where, value in found.items() if value not in documented}
    assert not undocumented, f"metrics bound where deploy/README.md does not say: {undocumented}"
    port = _port(next(iter(documented)))
    for name, service in services.items():
        assert service.get("network_mode") != "host", name
        if name.startswith("worker-"):
            assert not service.get("ports") and not service.get("expose"), f"{name} publishes a port"
    start = files["/usr/local/bin/podcast-worker"]
    hosts = re.findall(rf"-p\s+\"?([^\s\"]*):{port}:{port}", start)
    assert hosts == ["${private_ip}"] and "privateIpAddress" in start, f"the VM publishes metrics on {hosts}"
    assert not re.search(rf"-p\s+\"?{port}\b", start), "metrics published on every address of the VM"
    assert "--network host" not in start and "--net=host" not in start
    runpod = (DEPLOY / "clouds" / "runpod.md").read_text()
    assert "PIPELINE_METRICS_ADDRESS" not in runpod, "Runpod pods are on the internet: metrics stay off"
    for variant, docs in RENDERED.items():
        for name, deployment in by_kind(docs, "Deployment").items():
            pod = deployment["spec"]["template"]
            assert not pod["spec"].get("hostNetwork"), name
            container = pod["spec"]["containers"][0]
            assert [p for p in container["ports"] if p["name"] == "metrics"] == [
                {"name": "metrics", "containerPort": port}
            ], f"{variant} {name}: no hostPort, the documented port"
            assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port), name


def test_the_pod_monitor_scrapes_every_worker_pod_on_its_metrics_port():
    """overlays/prometheus-operator adds a PodMonitor: it selects every worker pod (and
    nothing else), and the port it names is each worker container's metrics port, the
    port of PIPELINE_METRICS_ADDRESS."""
    docs = RENDERED["prometheus-operator"]
    monitor = by_kind(docs, "PodMonitor")["podcast-workers"]
    assert not schema_errors(monitor)
    wrong = copy.deepcopy(monitor)
    wrong["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    assert schema_errors(wrong)  # the hand-written schema is strict
    selector = monitor["spec"]["selector"]["matchLabels"]
    deployments = by_kind(docs, "Deployment")
    selected = {
        name
        for name, d in deployments.items()
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    }
    assert selected == set(deployments) and len(selected) == 2 + len(GPU_CLASSES)  # cpu, claims
    assert monitor["metadata"]["namespace"] == deployments["podcast-worker-cpu"]["metadata"]["namespace"]
    address = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]["PIPELINE_METRICS_ADDRESS"]
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        for name, deployment in deployments.items():
            ports = {
                p["name"]: p["containerPort"]
                for c in deployment["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            assert ports.get(endpoint["port"]) == _port(address), name
    assert not by_kind(RENDERED["base"], "PodMonitor")  # the base needs no operator CRD
