"""Bring the test cluster up and down.

``up`` starts, in order: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
the image registry, the node (``real``: containerd + kubelet + kube-proxy on a private
pod bridge; ``kwok``: kwok simulating a node), and Traefik as the ingress controller.
Every listener is on 127.0.0.1, except the two a real node needs pods to reach
(kubelet and the API forwarder), which listen on the pod-bridge gateway address.
``down`` stops exactly what ``up`` started and removes what it created on the host.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import build, images, paths, pki, versions
from .procs import Procs

NODE_NAME = "deckhand-node"
BRIDGE = "dhk8s0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
CNI_BIN_DIR = "/usr/lib/cni"
PAUSE_IMAGE = "deckhand.local/pause:1"
ECHO_REPOSITORY = "deckhand/echo"
ECHO_TAG = "1"
INGRESS_CONTROLLER = "traefik.io/ingress-controller"
# containerd state and socket: short paths (unix sockets are limited to 108 bytes), so
# one real-node environment per machine (the pod bridge is per machine anyway).
RUN_DIR = Path("/run/deckhand-k8s-testenv")
# Only the host itself and pods may reach the gateway address (kubelet, API forwarder).
GATEWAY_GUARD = ["INPUT", "-d", GATEWAY, "!", "-i", BRIDGE, "-m", "addrtype", "!", "--src-type", "LOCAL",
                 "-j", "DROP", "-m", "comment", "--comment", "deckhand-k8s-testenv"]  # fmt: skip


class EnvError(RuntimeError):
    """The environment cannot start; the message says why and what to do."""


@dataclass
class EnvInfo:
    """What tests (and people) need to use a running environment (``<state>/env.json``)."""

    state_dir: str
    kubeconfig: str
    api_server: str
    registry: str
    ingress_http: str
    node: str  # "real" or "kwok"
    node_name: str = NODE_NAME
    echo_image: str = ""
    helm: str = ""  # path of the helm binary built for this environment
    # the same registry as pods see it (real node: forwarded on the pod-bridge gateway);
    # the node pulls both names, so an image pushed from a pod (Kaniko) runs under its name
    registry_in_cluster: str = ""
    ingress_classes: list[str] = field(default_factory=lambda: ["traefik", "nginx"])
    versions: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    startup_seconds: float = 0.0

    @property
    def real_node(self) -> bool:
        return self.node == "real"

    @classmethod
    def load(cls, state: Path | None = None) -> EnvInfo | None:
        path = (state or paths.state_dir()) / "env.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        Path(self.state_dir, "env.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


# Below the NodePort range (30000-32767) and the kernel's usual ephemeral range (32768-60999).
PORT_BAND = range(10000, 30000)


def free_ports(names: Sequence[str]) -> dict[str, int]:
    """Distinct free 127.0.0.1 ports, one per name, for components that bind them seconds later.

    Each port is held until all are chosen: back-to-back bind(0) calls can hand out the same
    port twice (about one `up` in 200), and the component that binds it second exits with
    "bind: address already in use" (traefik, started last, most often). The ports are also
    outside the ephemeral range, so nothing that binds port 0 or connects out in the meantime
    (kwok, containerd, test servers) can take one before its component binds it.
    """
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = [p for p in PORT_BAND if not low <= p <= high]
    random.shuffle(candidates)
    held: list[socket.socket] = []
    try:
        for port in candidates:
            if len(held) == len(names):
                break
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: fails on a port in any use
            except OSError:
                s.close()
                continue
            held.append(s)
        if len(held) < len(names):
            raise EnvError(f"only {len(held)} of {len(names)} ports free in {PORT_BAND} outside {low}-{high}")
        return {name: s.getsockname()[1] for name, s in zip(names, held, strict=True)}
    finally:
        for s in held:
            s.close()


def _run(cmd: list[str], *, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise EnvError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def wait_for(what: str, check, *, timeout: float, procs: Procs | None = None, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            pass
        if procs and log and log in procs.names() and not procs.alive(log):
            raise EnvError(
                f"{log} exited while waiting for {what} ({procs.exit_status(log)}); "
                f"its output ({procs.logs / log}.log):\n{procs.log_tail(log)}"
            )
        time.sleep(0.5)
    tail = procs.log_tail(log) if procs and log else ""
    raise EnvError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def real_node_blockers() -> list[str]:
    """Why a real kubelet node cannot run on this machine (empty list: it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (kubelet, containerd and the pod network need root)")
    for tool in ("containerd", "runc", "ctr", "ip", "iptables", "conntrack"):
        if not shutil.which(tool):
            problems.append(f"{tool} not found (Debian packages containerd, runc, iproute2, iptables, conntrack)")
    if not Path(CNI_BIN_DIR, "bridge").exists():
        problems.append(f"CNI plugins missing in {CNI_BIN_DIR} (Debian package containernetworking-plugins)")
    if not Path("/sys/fs/cgroup/memory").exists() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        problems.append("no cgroup memory controller mounted under /sys/fs/cgroup")
    elif not os.access("/sys/fs/cgroup", os.W_OK) and os.geteuid() == 0:
        problems.append("/sys/fs/cgroup is not writable")
    return problems


def _clean_iptables(prefixes: tuple[str, ...] = ("KUBE-", "CNI-")) -> None:
    """Remove the chains the kubelet, kube-proxy and the CNI plugins left (and jumps to them)."""
    for table in ("filter", "nat", "mangle"):
        rules = _run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
        chains = [r.split()[1] for r in rules if r.startswith("-N ") and r.split()[1].startswith(prefixes)]
        for rule in rules:
            parts = shlex.split(rule)
            if parts[0] == "-A" and not parts[1].startswith(prefixes) and any(c in parts for c in chains):
                _run(["iptables", "-t", table, "-D", *parts[1:]], check=False)
        for flag in ("-F", "-X"):
            for chain in chains:
                _run(["iptables", "-t", table, flag, chain], check=False)


def host_owner() -> str | None:
    """State dir of the live real-node environment holding this machine's bridge, if any."""
    try:
        owner = (RUN_DIR / "owner").read_text().strip()
    except OSError:
        return None
    return owner if Procs(Path(owner)).alive("kubelet") else None


class Cluster:
    def __init__(self, state: Path | None = None) -> None:
        self.state = (state or paths.state_dir()).resolve()
        self.procs = Procs(self.state)
        self.pki = self.state / "pki"
        self.admin_kubeconfig = self.state / "kubeconfig"

    # -- helpers -------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        cmd = ["kubectl", f"--kubeconfig={self.admin_kubeconfig}", *args]
        return _run(cmd, check=check, input=input).stdout

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", input=manifest)

    def _say(self, msg: str) -> None:
        print(f"[k8s-testenv {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # -- up ------------------------------------------------------------------------
    def up(self, node: str = "auto") -> EnvInfo:
        start = time.monotonic()
        existing = EnvInfo.load(self.state)
        if existing and self.procs.alive("kube-apiserver"):
            self._say(f"already up (state {self.state})")
            return existing
        self.down(quiet=True)
        owner = host_owner()
        busy = f"another real-node environment runs from {owner} (one per machine)"
        if node == "real" and owner:
            raise EnvError(busy + f"; stop it with DECKHAND_K8S_STATE_DIR={owner} scripts/k8s-testenv down")
        if node == "auto":
            blockers = real_node_blockers() + ([busy] if owner else [])
            node = "kwok" if blockers else "real"
            if blockers:
                self._say("real node not possible here, using kwok: " + "; ".join(blockers))
        elif node == "real" and (blockers := real_node_blockers()):
            raise EnvError("cannot run a real node: " + "; ".join(blockers))

        tools = [build.KUBERNETES, build.ETCD, build.TRAEFIK, build.HELM] + ([build.KWOK] if node == "kwok" else [])
        for tool in tools:
            build.build(tool)
        self.state.mkdir(parents=True, exist_ok=True)
        ports = free_ports([
            "apiserver", "etcd", "etcd_peer", "controller_manager", "scheduler", "registry",
            "ingress_http", "traefik_api", "kubelet", "kubelet_healthz", "kube_proxy_healthz",
            "kube_proxy_metrics",
        ])  # fmt: skip
        api = f"https://127.0.0.1:{ports['apiserver']}"
        pki.make_pki(self.pki, node_name=NODE_NAME, node_ip=GATEWAY, service_ip=SERVICE_IP)
        p = self.pki
        pki.kubeconfig(self.admin_kubeconfig, server=api, ca=p / "ca.crt", cert=p / "admin.crt",
                       key=p / "admin.key", user="deckhand-admin")  # fmt: skip
        info = EnvInfo(
            state_dir=str(self.state), kubeconfig=str(self.admin_kubeconfig), api_server=api,
            registry=f"127.0.0.1:{ports['registry']}", ingress_http=f"127.0.0.1:{ports['ingress_http']}",
            node=node, ports=ports, helm=str(build.HELM.bin("helm")),
            registry_in_cluster=f"{GATEWAY if node == 'real' else '127.0.0.1'}:{ports['registry']}",
            versions={"kubernetes": versions.KUBERNETES, "etcd": versions.ETCD, "traefik": versions.TRAEFIK,
                      "helm": versions.HELM, "kwok": versions.KWOK},
        )  # fmt: skip
        info.save()
        try:
            self._start_etcd(ports)
            if node == "real":
                self._make_bridge()
            self._start_apiserver(ports, advertise=GATEWAY if node == "real" else None)
            self._start_controllers(ports)
            self._start_registry(ports)
            if node == "real":
                self._start_real_node(ports, info)
            else:
                self._start_kwok_node()
            self._bootstrap_objects()
            self._start_traefik(ports)
            info.echo_image = images.push(
                images.binary_image(images.test_binary("echo"), port=8080),
                info.registry, ECHO_REPOSITORY, ECHO_TAG,
            )  # fmt: skip
        except BaseException:
            self._say(f"up failed; stopping what started (logs kept in {self.procs.logs})")
            if os.environ.get("DECKHAND_K8S_KEEP") != "1":
                self.down(quiet=True)
            raise
        info.startup_seconds = round(time.monotonic() - start, 1)
        info.save()
        self._say(f"up in {info.startup_seconds} s: node={node} KUBECONFIG={info.kubeconfig}")
        return info

    def _start_etcd(self, ports: dict[str, int]) -> None:
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd_peer']}"
        self.procs.start("etcd", [
            str(build.ETCD.bin("etcd")), "--name=deckhand", f"--data-dir={self.state / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=deckhand={peer}", "--unsafe-no-fsync", "--log-level=warn",
        ])  # fmt: skip
        wait_for("etcd", lambda: urllib.request.urlopen(f"{client}/health", timeout=2).status == 200,
                 timeout=60, procs=self.procs, log="etcd")  # fmt: skip

    def _start_apiserver(self, ports: dict[str, int], advertise: str | None) -> None:
        p = self.pki
        argv = [
            str(build.KUBERNETES.bin("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--advertise-address={advertise or '127.0.0.1'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--kubelet-client-certificate={p / 'admin.crt'}",
            f"--kubelet-client-key={p / 'admin.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-admission-plugins=NodeRestriction",
            "--profiling=false",
            "--endpoint-reconciler-type=lease" if advertise else "--endpoint-reconciler-type=none",
        ]
        self.procs.start("kube-apiserver", argv)
        wait_for("kube-apiserver /readyz", lambda: self.kubectl("get", "--raw", "/readyz").strip() == "ok",
                 timeout=180, procs=self.procs, log="kube-apiserver")  # fmt: skip

    def _start_controllers(self, ports: dict[str, int]) -> None:
        p, kc = self.pki, str(self.admin_kubeconfig)
        common = [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                  "--bind-address=127.0.0.1", "--leader-elect=false"]  # fmt: skip
        self.procs.start("kube-controller-manager", [
            str(build.KUBERNETES.bin("kube-controller-manager")), *common,
            f"--secure-port={ports['controller_manager']}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
            "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
        ])  # fmt: skip
        self.procs.start("kube-scheduler", [
            str(build.KUBERNETES.bin("kube-scheduler")), *common, f"--secure-port={ports['scheduler']}",
        ])  # fmt: skip

    def _start_registry(self, ports: dict[str, int]) -> None:
        binary = shutil.which("docker-registry")
        if not binary:
            raise EnvError("docker-registry not found (Debian package docker-registry; scripts/setup installs it)")
        cfg = self.state / "registry.yml"
        cfg.write_text(
            f"""version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {self.state / "registry"}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{ports["registry"]}
"""
        )
        self.procs.start("registry", [binary, "serve", str(cfg)])
        url = f"http://127.0.0.1:{ports['registry']}/v2/"
        wait_for("registry", lambda: urllib.request.urlopen(url, timeout=2).status == 200,
                 timeout=30, procs=self.procs, log="registry")  # fmt: skip

    # -- real node -------------------------------------------------------------------
    def _make_bridge(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        (RUN_DIR / "owner").write_text(str(self.state))
        if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
            _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "replace", f"{GATEWAY}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        if _run(["iptables", "-C", *GATEWAY_GUARD], check=False).returncode != 0:
            _run(["iptables", "-I", *GATEWAY_GUARD])
        for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
            _run(["sysctl", "-qw", f"{key}=1"], check=False)

    def _start_real_node(self, ports: dict[str, int], info: EnvInfo) -> None:
        sock = RUN_DIR / "containerd.sock"
        self._write_cni()
        cfg = self.state / "containerd" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        cfg.write_text(
            f"""version = 2
root = "{self.state / "containerd" / "root"}"
state = "{RUN_DIR / "containerd"}"
[grpc]
  address = "{sock}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  # This sandbox withholds CAP_SYS_RESOURCE, so oom_score_adj can't go below ours
  # (the kubelet asks -998 for sandboxes): clamp instead of failing in runc.
  restrict_oom_score_adj = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{self.state / "cni" / "net.d"}"
[{cri}.registry.mirrors."{info.registry}"]
  endpoint = ["http://{info.registry}"]
[{cri}.registry.mirrors."{info.registry_in_cluster}"]
  endpoint = ["http://{info.registry}"]
"""
        )
        self.procs.start("containerd", ["containerd", "--config", str(cfg)])
        wait_for("containerd", lambda: _run(["ctr", "--address", str(sock), "version"], check=False).returncode == 0,
                 timeout=60, procs=self.procs, log="containerd")  # fmt: skip
        pause = images.binary_image(images.test_binary("pause"))
        images.import_into_containerd(pause, PAUSE_IMAGE, address=sock, archive_dir=self.state / "images")

        p = self.pki
        kubelet_kc = self.state / "kubelet.kubeconfig"
        pki.kubeconfig(kubelet_kc, server=info.api_server, ca=p / "ca.crt", cert=p / "kubelet.crt",
                       key=p / "kubelet.key", user=f"system:node:{NODE_NAME}")  # fmt: skip
        kcfg = self.state / "kubelet.yaml"
        kcfg.write_text(
            f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {GATEWAY}
port: {ports["kubelet"]}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {ports["kubelet_healthz"]}
tlsCertFile: {p / "kubelet-serving.crt"}
tlsPrivateKeyFile: {p / "kubelet-serving.key"}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {p / "ca.crt"}}}
authorization: {{mode: Webhook}}
containerRuntimeEndpoint: unix://{sock}
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
podCIDR: {POD_CIDR}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
protectKernelDefaults: false
makeIPTablesUtilChains: true
localStorageCapacityIsolation: true
"""
        )
        self.procs.start("kubelet", [
            str(build.KUBERNETES.bin("kubelet")), f"--config={kcfg}", f"--kubeconfig={kubelet_kc}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={GATEWAY}",
            f"--root-dir={self.state / 'kubelet'}", "--v=2",
        ])  # fmt: skip
        pcfg = self.state / "kube-proxy.yaml"
        pcfg.write_text(
            f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {self.admin_kubeconfig}}}
mode: iptables
clusterCIDR: {POD_CIDR}
hostnameOverride: {NODE_NAME}
healthzBindAddress: 127.0.0.1:{ports["kube_proxy_healthz"]}
metricsBindAddress: 127.0.0.1:{ports["kube_proxy_metrics"]}
nodePortAddresses: ["127.0.0.0/8"]
conntrack: {{maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"""
        )
        self.procs.start("kube-proxy", [str(build.KUBERNETES.bin("kube-proxy")), f"--config={pcfg}"])
        forward = [sys.executable, "-m", "k8s_testenv.forward"]
        pythonpath = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        for name, port in (("api-forwarder", ports["apiserver"]), ("registry-forwarder", ports["registry"])):
            self.procs.start(name, [*forward, f"{GATEWAY}:{port}", f"127.0.0.1:{port}"], env=pythonpath)
        wait_for(f"node {NODE_NAME} Ready", self._node_ready, timeout=180, procs=self.procs, log="kubelet")

    def _write_cni(self) -> None:
        netd = self.state / "cni" / "net.d"
        netd.mkdir(parents=True, exist_ok=True)
        conf = {
            "cniVersion": "1.0.0",
            "name": "deckhand",
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.state / "cni" / "ipam")},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "firewall"},
            ],
        }  # fmt: skip
        (netd / "10-deckhand.conflist").write_text(json.dumps(conf, indent=2))

    def _node_ready(self) -> bool:
        out = self.kubectl("get", "node", NODE_NAME, "-o",
                           "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)  # fmt: skip
        return out.strip() == "True"

    # -- kwok node -------------------------------------------------------------------
    def _start_kwok_node(self) -> None:
        self.procs.start("kwok", [
            str(build.KWOK.bin("kwok")), f"--kubeconfig={self.admin_kubeconfig}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.1/24", "--node-ip=10.244.0.1", "--server-address=127.0.0.1:0",
        ])  # fmt: skip
        self.apply(
            f"""apiVersion: v1
kind: Node
metadata:
  name: {NODE_NAME}
  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}}
  labels: {{kubernetes.io/hostname: {NODE_NAME}, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}}
status:
  allocatable: {{cpu: "32", memory: 64Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 64Gi, pods: "110"}}
"""
        )
        wait_for(f"kwok node {NODE_NAME} Ready", self._node_ready, timeout=60, procs=self.procs, log="kwok")

    # -- cluster objects and ingress -------------------------------------------------
    def _bootstrap_objects(self) -> None:
        classes = []
        for name, default in (("traefik", "true"), ("nginx", "false")):
            classes.append(f"""apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: {name}
  annotations: {{ingressclass.kubernetes.io/is-default-class: "{default}"}}
spec:
  controller: {INGRESS_CONTROLLER}
""")
        self.apply("---\n".join(classes))
        wait_for("default service account", lambda: bool(self.kubectl("get", "sa", "default", "-o", "name")),
                 timeout=60, procs=self.procs, log="kube-controller-manager")  # fmt: skip

    def _start_traefik(self, ports: dict[str, int]) -> None:
        self.procs.start("traefik", [
            str(build.TRAEFIK.bin("traefik")),
            f"--entryPoints.web.address=127.0.0.1:{ports['ingress_http']}",
            f"--entryPoints.traefik.address=127.0.0.1:{ports['traefik_api']}",
            "--api.insecure=true", "--api.dashboard=false", "--ping=true", "--log.noColor=true",
            "--providers.kubernetesIngress=true",
            "--providers.kubernetesIngress.allowEmptyServices=true",
            "--providers.kubernetesIngress.ingressEndpoint.ip=127.0.0.1", "--log.level=INFO",
            "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
        ], env={"KUBECONFIG": str(self.admin_kubeconfig)})  # fmt: skip
        url = f"http://127.0.0.1:{ports['traefik_api']}/ping"
        wait_for("traefik", lambda: urllib.request.urlopen(url, timeout=2).status == 200,
                 timeout=60, procs=self.procs, log="traefik")  # fmt: skip

    # -- down ------------------------------------------------------------------------
    def down(self, *, quiet: bool = False) -> None:
        names = self.procs.names()
        if not names and not quiet:
            self._say("nothing running")
        if "kubelet" in names and self.procs.alive("kube-apiserver"):
            for n in ("traefik", "kube-scheduler", "kube-controller-manager"):
                self.procs.stop(n)
            # Let the kubelet tear pods down properly (CNI DEL, unmounts) before it stops.
            self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force",
                         "--wait=false", check=False)  # fmt: skip
            sock = RUN_DIR / "containerd.sock"
            wait_end = time.monotonic() + 45
            while time.monotonic() < wait_end and self._sandboxes(sock):
                time.sleep(1)
        for n in ("traefik", "kube-scheduler", "kube-controller-manager", "kubelet", "kwok"):
            self.procs.stop(n)
        self._kill_leftover_tasks()
        self.procs.stop_all()
        self._clean_host()
        if names and not quiet:
            self._say(f"down (logs kept in {self.procs.logs})")

    def _sandboxes(self, sock: Path) -> list[str]:
        if not sock.exists():
            return []
        out = _run(["ctr", "--address", str(sock), "-n", "k8s.io", "tasks", "ls", "-q"], check=False).stdout
        return out.split()

    def _kill_leftover_tasks(self) -> None:
        sock = RUN_DIR / "containerd.sock"
        if not (sock.exists() and self.procs.alive("containerd")):
            return
        ctr = ["ctr", "--address", str(sock), "-n", "k8s.io"]
        for task in self._sandboxes(sock):
            _run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], check=False)
        time.sleep(1)
        for task in self._sandboxes(sock):
            _run([*ctr, "tasks", "rm", "-f", task], check=False)
        for container in _run([*ctr, "containers", "ls", "-q"], check=False).stdout.split():
            _run([*ctr, "containers", "rm", container], check=False)

    def _clean_host(self) -> None:
        if os.geteuid() != 0:
            return
        owner = host_owner()
        host_wide = owner is None or owner == str(self.state)  # never clean up another live env
        kube_proxy = build.KUBERNETES.bin("kube-proxy")
        if host_wide and (self.state / "kube-proxy.yaml").exists():
            if kube_proxy.exists():
                _run([str(kube_proxy), "--cleanup"], check=False)
            _clean_iptables()
        # unmount whatever the kubelet/containerd left under the state dir (deepest first)
        ours = (str(self.state), str(RUN_DIR)) if host_wide else (str(self.state),)
        mounts = _run(["findmnt", "-rn", "-o", "TARGET"], check=False).stdout.split()
        for target in sorted((m for m in mounts if m.startswith(ours)),
                             key=len, reverse=True):  # fmt: skip
            _run(["umount", "-l", target], check=False)
        if host_wide:
            if _run(["ip", "link", "show", BRIDGE], check=False).returncode == 0:
                _run(["ip", "link", "del", BRIDGE], check=False)
            while _run(["iptables", "-D", *GATEWAY_GUARD], check=False).returncode == 0:
                pass
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        for sub in ("etcd", "containerd/root", "kubelet", "cni/ipam", "registry", "images"):
            shutil.rmtree(self.state / sub, ignore_errors=True)
        (self.state / "env.json").unlink(missing_ok=True)
