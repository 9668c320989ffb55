"""Time `vvkit sync` on generated workspaces of 10, 100 and 500 components.

Each component gets a service.py, a config.yml with env values and, for every
fifth one, two named instances and three replicas. For each size the script
prints the best of several in-process runs and the wall time of one run of
the real CLI, which adds Python start-up and imports. An in-process compose
run scans, checks, renders and writes docker-compose.yml. A Kubernetes run
scans, checks and renders the manifests without writing them. The goal is 500
components in under 2 s on one core, with time per component flat across
sizes.

    .venv/bin/python bench/sync.py [--sizes 10,100,500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vvkit.deploy.compose import render_compose
from vvkit.deploy.kubernetes import render_kubernetes
from vvkit.deploy.model import build_model
from vvkit.deploy.output import plan_changes
from vvkit.workspace import Workspace

TOML = '[workspace]\nname = "bench"\n[redis]\ncluster = true\nnodes = 6\n'
SERVICE = "from vv import Service, rpc\n\n\nclass C{index}(Service):\n    @rpc()\n    async def ping(self) -> str:\n        return 'pong'\n"
CONFIG = "env:\n  GREETING: hello\n  LIMIT: '10'\n  FLAG: yes\n"
CONFIG_WITH_INSTANCES = CONFIG + "instances: [eu, us]\nreplicas: 3\n"
COMPONENTS_PER_APP = 50


def make_workspace(root: Path, count: int) -> Workspace:
    (root / "vvkit.toml").write_text(TOML)
    for index in range(count):
        folder = root / "services" / f"app{index // COMPONENTS_PER_APP}" / f"c{index}"
        folder.mkdir(parents=True)
        (folder / "service.py").write_text(SERVICE.format(index=index))
        (folder / "config.yml").write_text(CONFIG_WITH_INSTANCES if index % 5 == 0 else CONFIG)
        (folder / ".env").write_text("EXTRA=$HOME\n")
    return Workspace.load(root)


def best_of(repeat: int, action) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def sync_compose(workspace: Workspace) -> None:
    output = workspace.root / "docker-compose.yml"
    changes = plan_changes({output: render_compose(build_model(workspace), output)})
    for change in changes:
        if change.action != "identical":
            output.write_text(change.content)


def sync_kubernetes(workspace: Workspace) -> None:
    render_kubernetes(build_model(workspace), workspace.root / "deploy" / "kubernetes")


def cli_seconds(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vvkit", "sync"], cwd=root, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500", help="comma-separated component counts")
    parser.add_argument("--repeat", type=int, default=5, help="in-process runs per size; the best is shown")
    options = parser.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs visible (shared machine: figures are noisy)")
    print(f"{'components':>10} {'compose s':>10} {'ms/comp':>8} {'k8s s':>8} {'ms/comp':>8} {'cli s':>7}")
    for count in (int(size) for size in options.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="vvkit-bench-") as folder:
            workspace = make_workspace(Path(folder), count)
            compose_s = best_of(options.repeat, lambda: sync_compose(workspace))
            kubernetes_s = best_of(options.repeat, lambda: sync_kubernetes(workspace))
            cli_s = cli_seconds(workspace.root)
        print(
            f"{count:>10} {compose_s:>10.3f} {compose_s / count * 1000:>8.2f} "
            f"{kubernetes_s:>8.3f} {kubernetes_s / count * 1000:>8.2f} {cli_s:>7.2f}"
        )


if __name__ == "__main__":
    main()
