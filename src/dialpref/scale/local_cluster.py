"""A Ray cluster of several nodes on this machine, as `ray start` makes them (loopback only): to try the
cluster path before a real one, and what the tests and benchmarks/scale_out.py run on.

    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        ...  # dialpref label ... --engine ray --ray-address cluster.address
        cluster.kill_node(1)   # SIGKILL a worker node's raylet: its actors die with it
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """Node 0 is the head; nodes 1.. are workers, each with its own node manager port (how kill_node finds
    its raylet)."""

    def __init__(self, nodes: int = 2, cpus_per_node: float = 1, temp_dir: str | Path | None = None) -> None:
        self.nodes, self.cpus = nodes, cpus_per_node
        self.temp_dir = str(temp_dir or tempfile.mkdtemp(prefix="dialpref-ray-"))
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.node_ports: list[int] = []

    def _ray(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], env=self.env,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args[:2])} failed: {(done.stdout + done.stderr)[-2000:]}")

    def start(self) -> "LocalCluster":
        self._ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}", f"--num-cpus={self.cpus}",
                  "--include-dashboard=false", f"--temp-dir={self.temp_dir}")
        self.node_ports = [0]
        for _ in range(self.nodes - 1):
            self.add_node()
        return self

    def add_node(self) -> int:
        """Start one more worker node; its index."""
        port = _free_port()
        self._ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}",
                  f"--node-manager-port={port}")
        self.node_ports.append(port)
        return len(self.node_ports) - 1

    def kill_node(self, index: int) -> None:
        """SIGKILL worker node `index`'s raylet (the head, 0, is not killed: the cluster would end)."""
        if index < 1:
            raise ValueError("node 0 is the head; kill a worker node (1 or above)")
        found = subprocess.run(["pgrep", "-f", f"raylet.*node_manager_port={self.node_ports[index]}"],
                               capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        if not pids:
            raise RuntimeError(f"no raylet found for node {index}")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], env=self.env,
                       capture_output=True, timeout=120)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
