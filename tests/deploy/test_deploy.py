"""The deploy/ artefacts, validated offline: Kubernetes manifests, compose stack, Alertmanager, Dockerfile, systemd.

No container engine and no cluster are needed. Kubernetes objects are checked against the API schemas bundled in
``kubernetes-validate``; the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule), which it has no schema
for, are checked by hand. Tools that may be missing are used when present and skipped otherwise: ``amtool``
(fails instead under ``SDM_REQUIRE_ALERTMANAGER=1``), ``promtool`` (``SDM_REQUIRE_PROMTOOL=1``), PostgreSQL and
``psql`` (``SDM_REQUIRE_POSTGRES=1``), ``kubectl``/``kustomize``, ``docker compose``/``docker-compose`` (only its
offline ``config`` command) and ``systemd-analyze``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import kubernetes_validate
import pytest
import yaml

from monitor.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
RULES = DEPLOY / "prometheus" / "schemadrift.rules.yml"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
COMPOSE_DIR = DEPLOY / "compose"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
SYSTEMD_UNIT = DEPLOY / "systemd" / "schema-drift-monitor.service"

JOB = "schema-drift-monitor"  # the Prometheus job label the alert rules match (up{job="schema-drift-monitor"})
CONFIG_PATH = "/etc/schema-drift-monitor/config.yaml"
PORT = 9478
# The oldest Kubernetes release the pinned kubernetes-validate range (>=1.28) knows, and the newest it bundles.
K8S_VERSIONS = sorted({"1.28.0", kubernetes_validate.latest_version()})
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# ${VAR}, ${VAR:-default}, ${VAR:?message} (compose interpolation; $$ escapes a dollar).
COMPOSE_VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?+-][^}]*)?\}")
# ${VAR} as the monitor's config substitutes it.
CONFIG_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MONITORS = ("monitor", "monitor-2")  # the compose stack's replicas


def _strings(node: Any) -> Iterator[str]:
    """Every string value in parsed YAML (comments are gone by then)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _config_vars(config_text: str) -> set[str]:
    """The ${VAR}s the monitor substitutes in a config file's values."""
    return {name for value in _strings(yaml.safe_load(config_text)) for name in CONFIG_VAR_RE.findall(value)}


def _require(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


def _missing(reason: str) -> NoReturn:
    """Skip for a missing tool, or fail under SDM_REQUIRE_DEPLOY_TOOLS (set by .ci/run, which installs them)."""
    if _require("SDM_REQUIRE_DEPLOY_TOOLS"):
        pytest.fail(f"{reason} and SDM_REQUIRE_DEPLOY_TOOLS is set")
    pytest.skip(reason)


def _tool(name: str, package: str, require_env: str | None = None) -> str:
    """The tool's path; skips when it is missing (fails instead when ``require_env`` is set)."""
    path = shutil.which(name)
    if path is None:
        if require_env is not None and _require(require_env):
            pytest.fail(f"{name} not found and {require_env} is set (apt-get install {package})")
        pytest.skip(f"{name} not installed ({package})")
    return path


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- Kubernetes ----------------------------------------------------------------------------------------------
# deploy/kubernetes/: base/ (Namespace, Service, NetworkPolicy), two overlays (single: a StatefulSet on SQLite; ha:
# a Deployment of replicas on PostgreSQL) and three components a user adds in an overlay of their own
# (prometheus-operator: ServiceMonitor + PrometheusRule, which need the CRDs; grafana-dashboard: the dashboard
# ConfigMap; tls: the web configuration mounted, probes and scrapes over HTTPS — patches only). The files are
# checked offline; what kustomize renders of every overlay, with and without the components, is checked too
# (with kubectl or kustomize).

OVERLAYS = ("single", "ha")
WORKLOADS = {"single": "single/statefulset.yaml", "ha": "ha/deployment.yaml"}
COMPONENTS = ("prometheus-operator", "grafana-dashboard", "tls")  # in this order: tls patches the ServiceMonitor
VARIANTS = [f"{overlay}{suffix}" for overlay in OVERLAYS for suffix in ("", "+components")] + ["single+tls"]
TLS_WEB_CONFIG = "/etc/schema-drift-monitor/web/web-config.yml"
PROMETHEUSRULE = K8S / "components" / "prometheus-operator" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "schema-drift-monitor.json"
DASHBOARD_CONFIGMAP = K8S / "components" / "grafana-dashboard" / "dashboard-configmap.yaml"
# kubectl apply (client-side) keeps the whole object in an annotation, and annotations hold at most 256 KiB.
ANNOTATION_LIMIT = 262144
DATA_DIR = "/var/lib/schema-drift-monitor"


def _patches(directory: Path) -> set[str]:
    """The files a kustomization names as patches (JSON 6902 operations, not objects)."""
    return {patch["path"] for patch in _yaml(directory / "kustomization.yaml").get("patches", []) if "path" in patch}


def _k8s_files() -> list[Path]:
    """Every Kubernetes object file under deploy/kubernetes (not the kustomizations, their patches, or the
    monitor's configs)."""
    return sorted(
        p for p in K8S.rglob("*.yaml")
        if p.name not in ("kustomization.yaml", "config.yaml") and p.name not in _patches(p.parent)
    )  # fmt: skip


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in _k8s_files():
        for i, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc is not None:
                docs.append((f"{path.relative_to(K8S)}#{i}", doc))
    return docs


def _k8s(relative: str) -> dict[str, Any]:
    """The one object of a file under deploy/kubernetes."""
    doc: dict[str, Any] = _yaml(K8S / relative)
    return doc


def _workload(overlay: str) -> dict[str, Any]:
    return _k8s(WORKLOADS[overlay])


def _config_text(overlay: str) -> str:
    """The monitor's config of an overlay (its configMapGenerator's config.yaml)."""
    return (K8S / overlay / "config.yaml").read_text(encoding="utf-8")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, K8S / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generator() -> ModuleType:
    return _script("generate_prometheusrule")


@pytest.fixture
def rules_text() -> str:
    """The shipped Prometheus rules file (the one source of truth for the PrometheusRule)."""
    return RULES.read_text(encoding="utf-8")


def _validate(doc: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        pytest.fail(f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {path}: {exc.message}")


_API_DOCS = [(name, doc) for name, doc in _k8s_docs() if doc.get("kind") not in CRD_KINDS]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("name", "doc"), _API_DOCS, ids=[name for name, _ in _API_DOCS])
def test_manifest_is_valid_for_kubernetes(name: str, doc: dict[str, Any], version: str) -> None:
    """Strict schema validation: unknown fields (typos) fail too."""
    _validate(doc, version)


def _kustomizations() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


@pytest.mark.parametrize("directory", _kustomizations(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_kustomization_lists_every_manifest_of_its_directory_but_the_secret_example(directory: Path) -> None:
    kustomization = _yaml(directory / "kustomization.yaml")
    component = directory.parent.name == "components"
    assert kustomization["kind"] == ("Component" if component else "Kustomization")
    resources = kustomization.get("resources", [])
    assert len(resources) == len(set(resources))
    files = {r for r in resources if (directory / r).is_file()} | _patches(directory)
    assert files == {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml", "config.yaml",
                                                                    "secret.example.yaml"}  # fmt: skip
    for reference in set(resources) - files:
        assert (directory / reference / "kustomization.yaml").is_file(), reference
    if not component:
        assert kustomization["namespace"] == _k8s("base/namespace.yaml")["metadata"]["name"]
    for generator in kustomization.get("configMapGenerator", []):
        assert generator["files"] == ["config.yaml"] and (directory / "config.yaml").is_file()


def _kustomize() -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    _missing("neither kubectl nor kustomize installed (apt-get install kubernetes-client)")


def _with_components(directory: Path, overlay: str, components: Sequence[str] = COMPONENTS) -> Path:
    """An overlay of the user's own (as docs/deployment.md shows): ``overlay`` plus ``components``."""
    up = Path(os.path.relpath(K8S, directory))  # kustomize takes relative paths only
    directory.mkdir(parents=True)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [str(up / overlay)],
            "components": [str(up / "components" / name) for name in components],
        }),
        encoding="utf-8",
    )  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """What ``kubectl kustomize`` (or ``kustomize build``) renders of each variant, by name."""
    argv = _kustomize()
    out = {}
    for variant in VARIANTS:
        overlay, _, components = variant.partition("+")
        directory = K8S / overlay
        if components:
            chosen = COMPONENTS if components == "components" else (components,)
            directory = _with_components(tmp_path_factory.mktemp("overlay") / "mine", overlay, chosen)
        result = _run([*argv, str(directory)])
        assert result.returncode == 0, f"{variant}: {result.stderr}"
        out[variant] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


EXPECTED_KINDS = {
    "single": ["Namespace", "ConfigMap", "Service", "NetworkPolicy", "StatefulSet"],
    "ha": ["Namespace", "ConfigMap", "Service", "NetworkPolicy", "Deployment", "PodDisruptionBudget",
           "NetworkPolicy"],
    "components": ["ServiceMonitor", "PrometheusRule", "ConfigMap"],
}  # fmt: skip


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_build_renders_valid_objects(
    rendered: dict[str, list[dict[str, Any]]], variant: str, version: str
) -> None:
    """Every overlay, with and without the components, renders; the result validates strictly too."""
    docs = rendered[variant]
    overlay, _, components = variant.partition("+")
    expected = EXPECTED_KINDS[overlay] + (EXPECTED_KINDS["components"] if components == "components" else [])
    assert sorted(d["kind"] for d in docs) == sorted(expected)
    namespace = _one(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["kind"]
        if doc["kind"] not in CRD_KINDS:
            _validate(doc, version)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_workload_mounts_the_generated_configmap(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert re.fullmatch(r"schema-drift-monitor-config-[a-z0-9]{10}", config_map["metadata"]["name"])
    assert config_map["data"] == {"config.yaml": _config_text(overlay)}
    workload = _one(docs, _workload(overlay)["kind"])
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


@pytest.mark.parametrize("variant", ["single+tls", "ha+components"])
def test_the_tls_component_names_the_web_config_and_probes_and_scrapes_over_https(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    """With components/tls the monitor reads the web configuration from its Secret and every probe (which needs
    no credentials) speaks HTTPS; with the Prometheus Operator too, the ServiceMonitor scrapes over HTTPS."""
    docs = rendered[variant]
    workload = _one(docs, _workload(variant.partition("+")[0])["kind"])
    pod = workload["spec"]["template"]["spec"]
    (monitor,) = pod["containers"]
    assert f"--web.config.file={TLS_WEB_CONFIG}" in monitor["args"]
    assert monitor["args"][0] == "run"
    mounts = {m["name"]: m["mountPath"] for m in monitor["volumeMounts"]}
    assert TLS_WEB_CONFIG.startswith(mounts["web"] + "/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["web"]["secret"]["secretName"] == "schema-drift-monitor-web"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert monitor[probe]["httpGet"]["scheme"] == "HTTPS", probe
    for init in pod.get("initContainers", []):
        assert not any("web.config" in arg for arg in init.get("args", []))
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    for service_monitor in monitors:
        (endpoint,) = service_monitor["spec"]["endpoints"]
        assert endpoint["scheme"] == "https" and endpoint["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"
    assert len(monitors) == (1 if variant == "ha+components" else 0)


DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
DOC_CHECKOUT = "../schema-drift-monitor/deploy/kubernetes"  # where docs/deployment.md's own overlay finds ours


def _documented_overlay() -> str:
    """The ``my-monitor/kustomization.yaml`` that docs/deployment.md shows."""
    match = re.search(r"```yaml\n# my-monitor/kustomization.yaml\n(.*?)```", DEPLOYMENT_DOC.read_text(encoding="utf-8"),
                      re.DOTALL)  # fmt: skip
    assert match, "docs/deployment.md: no my-monitor/kustomization.yaml example"
    return match[1]


def test_the_documented_overlay_of_ones_own_renders_with_its_config_image_and_release_label(tmp_path: Path) -> None:
    text = _documented_overlay()
    assert DOC_CHECKOUT in text
    mine = tmp_path / "my-monitor"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(text.replace(DOC_CHECKOUT, os.path.relpath(K8S, mine)), encoding="utf-8")
    config = _config_text("ha").replace("regions: [cn-north-4, cn-east-3, ap-southeast-1]", "regions: [cn-south-1]")
    (mine / "config.yaml").write_text(config, encoding="utf-8")
    result = _run([*_kustomize(), str(mine)])
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (config_map,) = [d for d in docs if d["metadata"]["name"].startswith("schema-drift-monitor-config")]
    assert config_map["data"] == {"config.yaml": config}
    deployment = _one(docs, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    images = {c["image"] for c in _containers(deployment)}
    assert images == {"registry.example.com/schema-drift-monitor:0.1.0"}
    for kind in CRD_KINDS:
        assert _one(docs, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _pod_labels(overlay: str = "ha") -> dict[str, str]:
    labels: dict[str, str] = _workload(overlay)["spec"]["template"]["metadata"]["labels"]
    return labels


def _ha_settings() -> dict[str, Any]:
    """The ``ha:`` block of the ha overlay's config."""
    settings: dict[str, Any] = yaml.safe_load(_config_text("ha"))["ha"]
    return settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workload_runs_locked_down_non_root_pods(overlay: str) -> None:
    workload = _workload(overlay)
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False
    for container in _containers(workload):
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, container["name"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "add" not in security["capabilities"], container["name"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], container["name"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/etc/schema-drift-monitor"]["readOnly"] is True, container["name"]
        assert "/tmp" in mounts, container["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    generators = _yaml(K8S / overlay / "kustomization.yaml")["configMapGenerator"]
    assert volumes["config"]["configMap"]["name"] in {g["name"] for g in generators}


def _measured_soak_rss_mib() -> int:
    """The peak RSS of the 10,000-target daemon soak, as the docs state it ("RSS 227-247 MiB")."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        if match := re.search(r"RSS (\d+)[\u2013-](\d+) MiB", page.read_text(encoding="utf-8")):
            return int(match[2])
    raise AssertionError('no measured RSS ("RSS N-M MiB") in README.md or docs/')


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_fit_the_measured_fleet_they_state(overlay: str) -> None:
    """The monitor's requests hold the measured RSS of 10,000 targets, its limit twice that; the manifest says
    which fleet size that is and where the figure comes from."""
    (monitor,) = _workload(overlay)["spec"]["template"]["spec"]["containers"]
    resources = monitor["resources"]
    peak = _measured_soak_rss_mib()
    assert _mebibytes(resources["requests"]["memory"]) >= peak
    assert _mebibytes(resources["limits"]["memory"]) >= 2 * peak
    text = (K8S / WORKLOADS[overlay]).read_text(encoding="utf-8")
    assert "up to 10,000 targets" in text and 'docs/operations.md "Scale"' in text and f"{peak} MiB" in text


def test_ha_runs_two_replicas_that_roll_without_a_gap() -> None:
    spec = _workload("ha")["spec"]
    assert spec["replicas"] == 2
    # A rolling update starts the new pod before stopping an old one, which then hands its targets over.
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_single_runs_one_pod_on_its_own_volume_never_two_on_one_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    statefulset = _workload("single")
    spec = statefulset["spec"]
    assert statefulset["kind"] == "StatefulSet" and spec["replicas"] == 1
    assert spec["serviceName"] == _k8s("base/service.yaml")["metadata"]["name"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (monitor,) = spec["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in monitor["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == DATA_DIR
    assert spec["template"]["spec"]["securityContext"]["fsGroup"] == _dockerfile_uid()  # the volume is writable
    monkeypatch.setenv("IMS_AUTH_TOKEN", "token-for-the-test")
    config = parse_config(yaml.safe_load(_config_text("single")), "single/config.yaml")
    url = config.database.url.get_secret_value()
    assert url.startswith("sqlite:////") and Path(url.removeprefix("sqlite:///")).parent == Path(DATA_DIR)
    assert config.ha.expected_replicas == 1
    # No PodDisruptionBudget: with one replica it would block every node drain.
    assert "PodDisruptionBudget" not in {doc["kind"] for name, doc in _k8s_docs() if name.startswith("single/")}


def test_replicas_prefer_different_nodes() -> None:
    anti = _workload("ha")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti  # a one-node cluster still runs both
    (preferred,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == _pod_labels()
    assert 1 <= preferred["weight"] <= 100


def test_disruption_budget_keeps_one_replica_and_lets_drains_proceed() -> None:
    pdb = _k8s("ha/pdb.yaml")
    deployment = _workload("ha")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert pdb["spec"]["minAvailable"] == 1
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]  # one pod may always be evicted
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= _pod_labels().items()


def test_each_replica_is_named_after_its_pod() -> None:
    ha = _ha_settings()
    assert ha["replica"] == "${POD_NAME}"
    assert ha["expected_replicas"] == _workload("ha")["spec"]["replicas"]
    for container in _containers(_workload("ha")):
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, container["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workload_probes_and_port(overlay: str) -> None:
    (monitor,) = _workload(overlay)["spec"]["template"]["spec"]["containers"]
    assert monitor["args"] == ["run", "--config", CONFIG_PATH]
    assert monitor["ports"] == [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}]
    assert monitor["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert monitor["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


UPGRADE = f"schema-drift-monitor db upgrade --config {CONFIG_PATH}"


def _init_script() -> str:
    """The db-upgrade init container's shell script."""
    (init,) = _workload("ha")["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["sh", "-c"]
    (script,) = init["args"]
    return str(script)


def test_init_container_migrates_the_database_first() -> None:
    pod = _workload("ha")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (monitor,) = pod["containers"]
    script = _init_script()
    assert UPGRADE in script and "for attempt in" in script  # retried: every replica's pod runs it
    assert script.rstrip().endswith("exit 1")
    assert init["image"] == monitor["image"]
    assert init["env"] == monitor["env"]  # it loads the same config, so it needs the same variables


def _run_init_script(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_init_containers_of_two_pods_both_succeed_on_a_fresh_database(pg_server: str, tmp_path: Path) -> None:
    """Two pods starting together race on the first migration: without the retry one of them usually fails with a
    duplicate-key error (Alembic's transaction rolls back whole); with it both exit 0 and the schema is current."""
    from monitor.store.engine import current_revision, head_revision, make_engine
    from tests.conftest import create_pg_database, drop_pg_database

    database = create_pg_database()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({
            "database": {"url": pg_server + database},
            "ha": {"replica": "${POD_NAME}"},
            "clouds": [{"name": "c", "endpoint": "https://x.{region}.example", "regions": ["r1"]}],
        }),
        encoding="utf-8",
    )  # fmt: skip
    script = _init_script().replace(CONFIG_PATH, str(config))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        pods = [_run_init_script(script, {**os.environ, "PATH": path, "POD_NAME": f"pod-{n}"}) for n in (1, 2)]
        outputs = [pod.communicate(timeout=120)[0] for pod in pods]
        assert [pod.returncode for pod in pods] == [0, 0], outputs
        engine = make_engine(pg_server + database)
        try:
            assert current_revision(engine) == head_revision()
        finally:
            engine.dispose()
    finally:
        drop_pg_database(database)


@pytest.mark.slow
def test_init_script_does_not_retry_an_invalid_config(tmp_path: Path) -> None:
    """Exit 2 (a config error) is final: retrying cannot fix it."""
    config = tmp_path / "config.yaml"
    config.write_text("database: {url: 'mysql://nope'}\n", encoding="utf-8")
    script = _init_script().replace(CONFIG_PATH, str(config))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = _run(["sh", "-c", script], env={**os.environ, "PATH": path})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "retrying" not in result.stderr


SECRET_KEYS = {"single": {"ims-auth-token"}, "ha": {"database-url", "ims-auth-token"}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_reach_the_config_only_through_the_secret(overlay: str) -> None:
    """Every ${VAR} of the overlay's config is an env var of every container, fed from the keys of the overlay's
    Secret (the replica name, POD_NAME, from the pod itself)."""
    referenced = _config_vars(_config_text(overlay))
    assert referenced == {"single": {"IMS_AUTH_TOKEN"}, "ha": {"DATABASE_URL", "IMS_AUTH_TOKEN", "POD_NAME"}}[overlay]
    secret = _k8s(f"{overlay}/secret.example.yaml")
    assert set(secret["stringData"]) == SECRET_KEYS[overlay]
    for container in _containers(_workload(overlay)):
        env = {e["name"]: e for e in container["env"]}
        assert referenced <= set(env), container["name"]
        for name in referenced - {"POD_NAME"}:
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_example_holds_placeholders_only(overlay: str) -> None:
    secret = _k8s(f"{overlay}/secret.example.yaml")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} should be a placeholder"


def test_ha_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://schemadrift:pw@postgres.example.svc:5432/schemadrift"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("IMS_AUTH_TOKEN", "token-for-the-test")
    monkeypatch.setenv("POD_NAME", "schema-drift-monitor-7d9f8b6c4-x2k8q")
    config = parse_config(yaml.safe_load(_config_text("ha")), "ha/config.yaml")
    assert config.database.url.get_secret_value() == url
    assert config.ha.replica == "schema-drift-monitor-7d9f8b6c4-x2k8q"
    assert config.ha.expected_replicas == 2
    assert (config.http.host, config.http.port) == ("0.0.0.0", PORT)
    assert config.targets()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_exposes_the_metrics_port_of_the_pods(overlay: str) -> None:
    service = _k8s("base/service.yaml")
    template = _workload(overlay)["spec"]["template"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": PORT, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()


def _policies(overlay: str) -> list[dict[str, Any]]:
    """The NetworkPolicies the overlay applies: the base's and its own."""
    return [doc for name, doc in _k8s_docs() if doc["kind"] == "NetworkPolicy" and name.startswith(("base/", overlay))]


def _ports(rules: list[dict[str, Any]]) -> set[tuple[int, str]]:
    return {(port["port"], port.get("protocol", "TCP")) for rule in rules for port in rule["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_admit_prometheus_only_and_reach_dns_https_and_the_database(overlay: str) -> None:
    policies = _policies(overlay)
    pod_labels = _pod_labels(overlay)
    for policy in policies:
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule without ports allows every port"
    ingress = [rule for policy in policies for rule in policy["spec"].get("ingress", [])]
    (scrape,) = ingress
    assert _ports([scrape]) == {(PORT, "TCP")}
    (source,) = scrape["from"]
    assert set(source) == {"namespaceSelector"}  # a namespace, never an address block
    assert set(source["namespaceSelector"]["matchLabels"]) == {"kubernetes.io/metadata.name"}
    egress = [rule for policy in policies for rule in policy["spec"].get("egress", [])]
    expected = {(53, "UDP"), (53, "TCP"), (443, "TCP")}
    if overlay == "ha":  # PostgreSQL, at the port of the Secret's database URL
        url = _k8s("ha/secret.example.yaml")["stringData"]["database-url"]
        match = re.search(r"@[^/:]+:(\d+)/", url)
        assert match
        expected.add((int(match[1]), "TCP"))
    assert _ports(egress) == expected
    assert all("policyTypes" in policy["spec"] for policy in policies)


def test_the_network_policy_says_why_https_goes_to_any_address() -> None:
    text = (K8S / "base" / "networkpolicy.yaml").read_text(encoding="utf-8")
    assert "cannot name" in text and "host names" in text
    assert "cannot name the clouds' hosts" in (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")


def test_servicemonitor_scrapes_the_service_as_job_schema_drift_monitor() -> None:
    monitor = _k8s("components/prometheus-operator/servicemonitor.yaml")
    service = _k8s("base/service.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint.get("path", "/metrics") == "/metrics"
    # The job label as the Prometheus Operator derives it: the Service's jobLabel label (else the Service
    # name), then the endpoint's relabelings.
    job_label = monitor["spec"].get("jobLabel")
    job = service["metadata"]["labels"][job_label] if job_label else service["metadata"]["name"]
    assert job == JOB
    for relabel in endpoint.get("relabelings", []):
        if relabel.get("targetLabel") == "job":
            assert relabel.get("action", "replace") == "replace" and not relabel.get("sourceLabels")
            job = relabel["replacement"]
    assert job == JOB


def test_prometheusrule_carries_the_rules_file_groups(rules_text: str) -> None:
    rule = _yaml(PROMETHEUSRULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == _k8s("base/namespace.yaml")["metadata"]["name"]
    assert rule["spec"] == {"groups": yaml.safe_load(rules_text)["groups"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_with_the_components_carries_the_rules_and_the_dashboard_unchanged(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, rules_text: str
) -> None:
    docs = rendered[f"{overlay}+components"]
    assert _one(docs, "PrometheusRule")["spec"] == {"groups": yaml.safe_load(rules_text)["groups"]}
    dashboard = _one(docs, "ConfigMap", "schema-drift-monitor-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"schema-drift-monitor.json": DASHBOARD.read_text(encoding="utf-8")}
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= _one(docs, "Service")["metadata"]["labels"].items()
    without = rendered[overlay]
    assert not {"PrometheusRule", "ServiceMonitor"} & {d["kind"] for d in without}


def test_committed_prometheusrule_is_the_generator_output(rules_text: str) -> None:
    committed = PROMETHEUSRULE.read_text(encoding="utf-8")
    assert committed == _generator().render(rules_text), "run: python deploy/kubernetes/generate_prometheusrule.py"


PLACEHOLDER_RULES = """\
groups:
  - name: placeholder
    rules:
      - alert: Placeholder
        expr: |
          up{job="schema-drift-monitor"}
          == 0
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: A placeholder.
          description: >-
            {{ $labels.instance }} is down: a long folded description that goes on and on and on and on and on
            and on and on and on past any line width a YAML emitter might pick.
"""


def test_generator_wraps_groups_deterministically(tmp_path: Path) -> None:
    generator = _generator()
    rules, output = tmp_path / "rules.yml", tmp_path / "prometheusrule.yaml"
    rules.write_text(PLACEHOLDER_RULES, encoding="utf-8")
    argv = ["--rules", str(rules), "--output", str(output)]

    assert generator.main(argv) == 0
    first = output.read_text(encoding="utf-8")
    assert first.startswith("# generated — do not edit")
    doc = yaml.safe_load(first)
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert doc["spec"] == {"groups": yaml.safe_load(PLACEHOLDER_RULES)["groups"]}
    assert "expr: |\n" in first  # multi-line PromQL stays a readable block

    assert generator.main(argv) == 0
    assert output.read_text(encoding="utf-8") == first  # same input, same bytes
    assert generator.render(PLACEHOLDER_RULES) == first
    assert generator.main([*argv, "--check"]) == 0
    output.write_text(first + "# hand edit\n", encoding="utf-8")
    assert generator.main([*argv, "--check"]) == 1


def test_generator_writes_nothing_without_a_rules_file(tmp_path: Path) -> None:
    generator = _generator()
    output = tmp_path / "prometheusrule.yaml"
    assert generator.main(["--rules", str(tmp_path / "missing.yml"), "--output", str(output)]) == 2
    (tmp_path / "empty.yml").write_text("groups: []\n", encoding="utf-8")
    assert generator.main(["--rules", str(tmp_path / "empty.yml"), "--output", str(output)]) == 2
    assert not output.exists()


def test_generator_runs_as_a_script(rules_text: str) -> None:
    result = _run([sys.executable, str(K8S / "generate_prometheusrule.py"), "--check"], cwd=ROOT)
    assert result.returncode == 0, result.stderr


def _dashboard_generator() -> ModuleType:
    return _script("generate_dashboard_configmap")


def test_committed_dashboard_configmap_is_the_generator_output() -> None:
    committed = DASHBOARD_CONFIGMAP.read_text(encoding="utf-8")
    expected = _dashboard_generator().render(DASHBOARD.read_text(encoding="utf-8"))
    assert committed == expected, "run: python deploy/kubernetes/generate_dashboard_configmap.py"


def test_dashboard_configmap_carries_the_dashboard_unchanged_for_grafanas_sidecar() -> None:
    config_map = _yaml(DASHBOARD_CONFIGMAP)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    assert text == DASHBOARD.read_text(encoding="utf-8")
    assert json.loads(text)["uid"] == "schema-drift-monitor"
    assert len(json.dumps(config_map)) < ANNOTATION_LIMIT, "too big for kubectl apply: use --server-side"


def test_dashboard_generator_copies_the_file_deterministically(tmp_path: Path) -> None:
    generator = _dashboard_generator()
    dashboard, output = tmp_path / "dashboard.json", tmp_path / "dashboard-configmap.yaml"
    dashboard.write_text(json.dumps({"uid": "u", "title": "T", "panels": [{"id": 1}]}, indent=2) + "\n")
    argv = ["--dashboard", str(dashboard), "--output", str(output)]

    assert generator.main(argv) == 0
    first = output.read_text(encoding="utf-8")
    assert first.startswith("# generated — do not edit")
    doc = yaml.safe_load(first)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "ConfigMap")
    assert doc["data"] == {"schema-drift-monitor.json": dashboard.read_text(encoding="utf-8")}
    assert "schema-drift-monitor.json: |\n" in first  # the JSON stays a readable block

    assert generator.main(argv) == 0
    assert output.read_text(encoding="utf-8") == first  # same input, same bytes
    assert generator.main([*argv, "--check"]) == 0
    output.write_text(first + "# hand edit\n", encoding="utf-8")
    assert generator.main([*argv, "--check"]) == 1


@pytest.mark.parametrize("content", [None, "[]\n", "{not json\n", '{"title": "no uid, no panels"}\n'])
def test_dashboard_generator_writes_nothing_without_a_dashboard(tmp_path: Path, content: str | None) -> None:
    dashboard, output = tmp_path / "dashboard.json", tmp_path / "dashboard-configmap.yaml"
    if content is not None:
        dashboard.write_text(content, encoding="utf-8")
    assert _dashboard_generator().main(["--dashboard", str(dashboard), "--output", str(output)]) == 2
    assert not output.exists()


def test_dashboard_generator_runs_as_a_script() -> None:
    result = _run([sys.executable, str(K8S / "generate_dashboard_configmap.py"), "--check"], cwd=ROOT)
    assert result.returncode == 0, result.stderr


# --- docker compose ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(COMPOSE_FILE)
    return data


def _env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(host path, container path) of a service's bind mounts, host paths resolved against deploy/."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            yield (DEPLOY / source).resolve(), target


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind a path inside the service's container, through its bind mounts."""
    for host, target in _bind_mounts(service):
        if container_path == target:
            return host
        if container_path.startswith(target.rstrip("/") + "/"):
            return host / container_path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{container_path} is not on a bind mount")


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "migrate",
        "monitor",
        "monitor-2",
        "prometheus",
        "alertmanager",
        "grafana-db-user",
        "grafana",
    }
    assert services["postgres"]["image"] == "postgres:15"
    assert services["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert services["alertmanager"]["image"] == "prom/alertmanager:v0.25.0"
    assert re.fullmatch(r"grafana/grafana:10\.4\.\d+", services["grafana"]["image"])
    for name in ("migrate", *MONITORS):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE


def _compose_cli() -> list[str] | None:
    """``docker compose`` (v2 plugin) when present, else ``docker-compose``; None when neither is installed."""
    docker = shutil.which("docker")
    if docker and _run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_passes_docker_compose_config(tmp_path: Path) -> None:
    """``docker compose config`` (no engine needed) validates the file against the Compose schema and
    interpolates it with .env.example."""
    cli = _compose_cli()
    if cli is None:
        _missing("neither the docker compose plugin nor docker-compose is installed (apt-get install docker-compose)")
    compose_file = COMPOSE_FILE
    if cli[-1].endswith("docker-compose"):
        # Compose v1 (Debian's docker-compose 1.29) predates the top-level `name`; the rest is checked as is.
        compose_file = tmp_path / "docker-compose.yml"
        text = COMPOSE_FILE.read_text(encoding="utf-8")
        compose_file.write_text(re.sub(r"(?m)^name: .*\n", "", text), encoding="utf-8")
    argv = [*cli, "--project-name", "sdm", "--project-directory", str(DEPLOY), "-f", str(compose_file)]
    env = {k: v for k, v in os.environ.items() if k not in _env_example()}  # the shell's values would win
    result = _run([*argv, "--env-file", str(COMPOSE_DIR / ".env.example"), "config"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    for name in MONITORS:
        environment = rendered["services"][name]["environment"]
        assert environment["POSTGRES_PASSWORD"] == _env_example()["POSTGRES_PASSWORD"], name
        assert environment["MONITOR_REPLICA"] == name  # the YAML merge kept the secrets and added the name
    # Without the env file the secrets are missing, and compose says which and where to set them.
    result = _run([*argv, "config"], cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "deploy/compose/.env" in result.stderr


def test_compose_orders_postgres_migration_monitor(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres_check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in postgres_check
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade", "--config", CONFIG_PATH]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart") == "no"
    for name in MONITORS:  # one migration, before both replicas: they never race on it
        monitor = services[name]
        assert monitor["command"] == ["run", "--config", CONFIG_PATH], name
        assert monitor["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert monitor["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert monitor["healthcheck"]["test"] == ["CMD", "schema-drift-monitor", "healthcheck", "--config",
                                                 CONFIG_PATH], name  # fmt: skip
    assert services["monitor"]["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]
    assert services["monitor-2"]["ports"] == [f"127.0.0.1:{PORT + 1}:{PORT}"]


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    """Every bind mount points at a file or directory in the repository; named volumes are declared."""
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"
    monitor, grafana = compose["services"]["monitor"], compose["services"]["grafana"]
    assert _host_path(monitor, CONFIG_PATH) == COMPOSE_DIR / "config.yaml"
    assert _host_path(grafana, "/etc/grafana/provisioning") == DEPLOY / "grafana" / "provisioning"
    assert _host_path(grafana, "/var/lib/grafana/dashboards") == DEPLOY / "grafana" / "dashboards"


def test_compose_secrets_come_from_the_env_file(compose: dict[str, Any]) -> None:
    """No secret is inline: secret-looking variables are ${...} interpolations, all defined in .env.example."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    example = _env_example()
    referenced = set(COMPOSE_VAR_RE.findall(text))
    assert referenced == set(example)
    assert {"POSTGRES_PASSWORD", "IMS_AUTH_TOKEN", "GRAFANA_PG_PASSWORD"} <= referenced
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: use the mapping form for environment"
        for key, value in environment.items():
            if re.search(r"PASSWORD|TOKEN|SECRET|_KEY$", key):
                assert COMPOSE_VAR_RE.fullmatch(str(value)), f"{name}: {key} must come from the env file"
    assert "GRAFANA_PG_PASSWORD" in compose["services"]["grafana"]["environment"]


def test_compose_config_loads(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env_example().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MONITOR_REPLICA", "monitor")
    config_text = (COMPOSE_DIR / "config.yaml").read_text(encoding="utf-8")
    config = parse_config(yaml.safe_load(config_text), "compose/config.yaml")
    assert (config.ha.replica, config.ha.expected_replicas) == ("monitor", len(MONITORS))
    password = _env_example()["POSTGRES_PASSWORD"]
    assert config.database.url.get_secret_value() == (
        f"postgresql+psycopg://schemadrift:{password}@postgres:5432/schemadrift"
    )
    assert (config.http.host, config.http.port) == ("0.0.0.0", PORT)
    # Every variable the config needs is given to every container that loads it.
    for name in ("migrate", *MONITORS):
        assert _config_vars(config_text) <= set(compose["services"][name]["environment"]), name
    assert _config_vars(config_text) == {"POSTGRES_PASSWORD", "IMS_AUTH_TOKEN", "MONITOR_REPLICA"}
    # Each replica has its own name, and the config expects as many as the stack runs.
    names = [compose["services"][name]["environment"]["MONITOR_REPLICA"] for name in MONITORS]
    assert names == list(MONITORS)
    postgres_env = compose["services"]["postgres"]["environment"]
    assert (postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_DB"]) == ("schemadrift", "schemadrift")


def test_compose_prometheus_scrapes_the_monitor_with_the_shipped_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    config_path = _host_path(prometheus, "/etc/prometheus/prometheus.yml")
    assert config_path == COMPOSE_DIR / "prometheus.yml"
    config = _yaml(config_path)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs[JOB]["static_configs"] for t in sc["targets"]]
    assert targets == [f"{name}:{PORT}" for name in MONITORS]  # every replica
    assert jobs[JOB].get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["/etc/prometheus/rules/schemadrift.rules.yml"]
    assert _host_path(prometheus, config["rule_files"][0]) == RULES
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert [t for sc in alertmanagers["static_configs"] for t in sc["targets"]] == ["alertmanager:9093"]


@pytest.mark.promtool
def test_compose_prometheus_config_passes_promtool(compose: dict[str, Any], rules_text: str, tmp_path: Path) -> None:
    """``promtool check config`` with the rule files mapped back to their paths in the repository."""
    promtool = _tool("promtool", "prometheus", "SDM_REQUIRE_PROMTOOL")
    prometheus = compose["services"]["prometheus"]
    config = _yaml(COMPOSE_DIR / "prometheus.yml")
    config["rule_files"] = [str(_host_path(prometheus, path)) for path in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_use_the_scrape_job_name(rules_text: str) -> None:
    jobs = set(re.findall(r'job\s*=~?\s*"([^"]*)"', rules_text))
    assert jobs <= {JOB}, f"the rules match job(s) {jobs}; the deploy files scrape as {JOB!r}"


def test_compose_grafana_provisioning_matches_the_stack(compose: dict[str, Any]) -> None:
    """Grafana's provisioned datasources reach compose services, and its $__env{VAR}s are set in its container."""
    services = compose["services"]
    grafana = services["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    files = sorted(provisioning.glob("*/*.y*ml"))
    assert files, "no provisioning files"
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for value in _strings(data):
            for name in re.findall(r"\$__env\{(\w+)\}|\$\{?([A-Za-z_]\w*)\}?", value):
                variable = name[0] or name[1]
                assert variable in grafana["environment"], f"{path.name}: ${variable} is not set for grafana"
        for provider in data.get("providers", []):
            assert _host_path(grafana, provider["options"]["path"]) == DEPLOY / "grafana" / "dashboards"
        for source in data.get("datasources", []):
            host = re.sub(r"^\w+://", "", source["url"]).split("/")[0].split(":")[0]
            assert host in services, f"{path.name}: datasource {source['name']} points at {host}, not a service"
            if source["type"] in ("postgres", "grafana-postgresql-datasource"):
                database = source.get("jsonData", {}).get("database") or source.get("database")
                assert database == services["postgres"]["environment"]["POSTGRES_DB"]
                assert f"ROLE {source['user']} " in services["grafana-db-user"]["command"][0]


def _grafana_role_script(compose: dict[str, Any]) -> str:
    """The grafana-db-user shell script as the container runs it (compose's $$ unescaped)."""
    service = compose["services"]["grafana-db-user"]
    assert service["entrypoint"] == ["sh", "-c"]
    return str(service["command"][0]).replace("$$", "$")


@pytest.mark.postgres
def test_compose_grafana_role_is_read_only_on_changes_and_targets(
    compose: dict[str, Any], pg_server: str, tmp_path: Path
) -> None:
    """The grafana-db-user script, run twice on a migrated database: SELECT on changes/targets, nothing else."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from monitor.store.engine import make_engine, upgrade
    from tests.conftest import PG_ADMIN_DSN, create_pg_database, drop_pg_database

    psql = _tool("psql", "postgresql-client", "SDM_REQUIRE_POSTGRES")
    database = create_pg_database()
    role = f"{database}_reader"
    script = _grafana_role_script(compose).replace("grafana_reader", role)
    script = script.replace("DATABASE schemadrift", f'DATABASE "{database}"').replace("psql ", f"{psql} ", 1)
    admin = conninfo_to_dict(PG_ADMIN_DSN)
    env = {
        **os.environ,
        "PGHOST": str(admin.get("host", "127.0.0.1")),
        "PGPORT": str(admin.get("port", "5432")),
        "PGUSER": str(admin.get("user", "postgres")),
        "PGDATABASE": database,
        "GRAFANA_PG_PASSWORD": "reader-pw-for-tests",
    }
    if admin.get("password"):
        env["PGPASSWORD"] = str(admin["password"])
    try:
        engine = make_engine(pg_server + database)
        upgrade(engine)
        engine.dispose()
        for _ in range(2):
            result = _run(["sh", "-c", script], env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
        reader = f"host={env['PGHOST']} port={env['PGPORT']} dbname={database} user={role} password=reader-pw-for-tests"
        with psycopg.connect(reader, autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM changes").fetchone()
            conn.execute("SELECT count(*) FROM targets").fetchone()
            for statement in ("SELECT count(*) FROM snapshots", "SELECT count(*) FROM outbox", "DELETE FROM changes"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        drop_pg_database(database)
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


# --- Alertmanager --------------------------------------------------------------------------------------------


def _amtool() -> str:
    return _tool("amtool", "prometheus-alertmanager", "SDM_REQUIRE_ALERTMANAGER")


def test_alertmanager_example_passes_amtool_check_config() -> None:
    result = _run([_amtool(), "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "SchemaDriftRegionDown", "severity": "critical"}, "pager-webhook"),
        ({"alertname": "SchemaDriftTargetFailing", "severity": "warning"}, "default-webhook"),
        ({"alertname": "SchemaDriftWarningChange", "severity": "info"}, "default-webhook"),
        ({"alertname": "SomethingElse"}, "default-webhook"),
    ],
)
def test_alertmanager_routes_by_severity(labels: dict[str, str], receiver: str) -> None:
    argv = [_amtool(), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}"]
    result = _run(argv + [f"{k}={v}" for k, v in labels.items()])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def _matchers(entries: list[str]) -> dict[str, str]:
    """``name="value"``/``name=~"re"``/``name!="value"`` matcher strings → {"name<op>": value}."""
    out = {}
    for entry in entries:
        match = re.fullmatch(r'\s*(\w+)\s*(=~|!=|!~|=)\s*"(.*)"\s*', entry)
        assert match, f"unexpected matcher syntax {entry!r}"
        out[match[1] + match[2]] = match[3]
    return out


def _alert_names(rules_text: str) -> set[str]:
    return {r["alert"] for g in yaml.safe_load(rules_text)["groups"] for r in g["rules"] if "alert" in r}


def test_alertmanager_groups_and_inhibits(rules_text: str) -> None:
    config = _yaml(ALERTMANAGER_CONFIG)
    route = config["route"]
    assert route["group_by"] == ["alertname", "cloud", "region"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route
    receivers = {r["name"]: r for r in config["receivers"]}
    for receiver in receivers.values():
        for webhook in receiver["webhook_configs"]:
            assert re.match(r"https?://[^/]+\.example(:\d+)?/", webhook["url"]), "placeholder hosts only"

    names = _alert_names(rules_text)
    region_down, monitor_down = None, None
    for rule in config["inhibit_rules"]:
        source, target = _matchers(rule["source_matchers"]), _matchers(rule["target_matchers"])
        if source.get("alertname=") == "SchemaDriftRegionDown":
            region_down = (target, rule.get("equal"))
        elif source.get("alertname=") == "SchemaDriftMonitorDown":
            monitor_down = (target, rule.get("equal"))
    assert region_down is not None and monitor_down is not None

    target, equal = region_down
    assert equal == ["cloud", "region"]
    inhibited = {n for n in names if re.fullmatch(target["alertname=~"], n)}
    assert inhibited == {"SchemaDriftTargetFailing", "SchemaDriftTargetStale"}

    target, equal = monitor_down
    assert not equal  # the monitor down: every other alert of it is blind
    inhibited = {n for n in names if re.fullmatch(target["alertname=~"], n) and n != target.get("alertname!=")}
    assert inhibited == names - {"SchemaDriftMonitorDown"}
    assert {"SchemaDriftRegionDown", "SchemaDriftMonitorDown"} <= names


# --- Dockerfile ----------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]


def _dockerfile_uid() -> int:
    users = [args for keyword, args in _final_stage() if keyword == "USER"]
    assert users, "the image must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    return int(user)


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    stage = _final_stage()
    assert _dockerfile_uid() != 0
    healthchecks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    # the healthcheck command reads the config: the listen address, and the scheme of its web configuration
    assert yaml.safe_load(healthchecks[0].partition("CMD")[2]) == ["schema-drift-monitor", "healthcheck", "--config",
                                                                    CONFIG_PATH]  # fmt: skip
    assert ("EXPOSE", str(PORT)) in stage
    entrypoint = [args for keyword, args in stage if keyword == "ENTRYPOINT"]
    cmd = [args for keyword, args in stage if keyword == "CMD"]
    assert yaml.safe_load(entrypoint[-1]) == ["schema-drift-monitor"]
    assert yaml.safe_load(cmd[-1]) == ["run", "--config", CONFIG_PATH]
    # Everything the build copies exists in the build context (the repository root).
    for keyword, args in _instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


# --- systemd -------------------------------------------------------------------------------------------------


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in SYSTEMD_UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_is_sandboxed() -> None:
    settings = _unit_settings()
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "StateDirectory": "schema-drift-monitor",
    }.items():
        assert settings.get(key) == [value], key
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["ExecStart"] == [f"/usr/local/bin/schema-drift-monitor run --config {CONFIG_PATH}"]


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks that it does)."""
    unit = tmp_path / SYSTEMD_UNIT.name
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace("/usr/local/bin/schema-drift-monitor", sys.executable), encoding="utf-8")
    return unit


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "systemd", "SDM_REQUIRE_DEPLOY_TOOLS")
    unit = _unit_copy(tmp_path)
    result = _run([analyze, "verify", str(unit)], cwd=tmp_path)
    # verify exits 0 on unknown keys and bad values ("..., ignoring"); any message about the unit is a defect.
    about_unit = [line for line in result.stderr.splitlines() if unit.name in line]
    assert result.returncode == 0 and not about_unit, result.stderr


def test_systemd_unit_exposure_is_low(tmp_path: Path) -> None:
    """``systemd-analyze security --offline`` rates the sandbox at most 2.0 ("OK"; 10 is unprotected)."""
    analyze = _tool("systemd-analyze", "systemd", "SDM_REQUIRE_DEPLOY_TOOLS")
    unit = _unit_copy(tmp_path)
    result = _run([analyze, "security", "--offline=yes", "--threshold=20", str(unit)], cwd=tmp_path)
    if "--offline" in result.stderr or "--threshold" in result.stderr:
        _missing("systemd-analyze too old for security --offline (needs systemd 250)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
