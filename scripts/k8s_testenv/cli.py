"""Command line of the Kubernetes test environment (``scripts/k8s-testenv``)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import asdict

from . import build, paths, versions
from .cluster import Cluster, EnvError, EnvInfo, real_node_blockers


def _cmd_build(args: argparse.Namespace) -> int:
    build.build_all(args.tools or None, force=args.force)
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    info = Cluster().up(node=args.node)
    _print_env(info)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    Cluster().down()
    return 0


def _print_env(info: EnvInfo | None, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(asdict(info) if info else {"running": False}, indent=2))
        return
    if info is None:
        print("# not running (scripts/k8s-testenv up)")
    else:
        print(f"export KUBECONFIG={info.kubeconfig}")
        print(f"# node={info.node} registry={info.registry} ingress=http://{info.ingress_http}")
        print(f"# echo image: {info.echo_image}")
    tools = {t.name: t.version for t in build.ALL_TOOLS}
    print("# versions: " + " ".join(f"{k}={v}" for k, v in tools.items()))
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True)
        if out.returncode == 0:
            print("# kubectl " + json.loads(out.stdout)["clientVersion"]["gitVersion"])


def _cmd_env(args: argparse.Namespace) -> int:
    _print_env(EnvInfo.load(), as_json=args.json)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    blockers = real_node_blockers()
    print("real node: " + ("possible" if not blockers else "not possible: " + "; ".join(blockers)))
    missing = [t.name for t in build.ALL_TOOLS if not t.complete]
    print("tools cached in " + str(paths.tools_dir()) + (f" (missing: {', '.join(missing)})" if missing else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="k8s-testenv",
        description=f"A real Kubernetes {versions.KUBERNETES} test cluster built from source. "
        f"State and logs: {paths.state_dir()} (DECKHAND_K8S_STATE_DIR); "
        f"tools: {paths.tools_dir()} (DECKHAND_CACHE_DIR).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build the Go tools into the cache (no-op when cached)")
    names = ", ".join(build.TOOLS_BY_NAME)
    p.add_argument("tools", nargs="*", metavar="TOOL", help=f"{names} (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(func=_cmd_build)
    p = sub.add_parser("up", help="start the cluster (builds missing tools first)")
    p.add_argument(
        "--node",
        choices=["auto", "real", "kwok"],
        default="auto",
        help="real kubelet node, kwok simulated node, or real when possible (default)",
    )
    p.set_defaults(func=_cmd_up)
    sub.add_parser("down", help="stop everything up started and clean up").set_defaults(func=_cmd_down)
    p = sub.add_parser("env", help="print KUBECONFIG, addresses and versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_env)
    sub.add_parser("check", help="can a real node run here; are the tools cached").set_defaults(func=_cmd_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (EnvError, build.BuildError) as err:
        print(f"k8s-testenv: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
