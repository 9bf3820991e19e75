"""What every Ray stage shares: the run's Ray options, the teacher an actor builds, the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RayOptions:
    """address: a running cluster ("auto", "ray://host:10001") or None for a local one; actors: at most this
    many actors (each holds one teacher; Ray keeps at least one, so a run goes on when a node is lost);
    cpus_per_actor: CPUs Ray reserves per actor (an embedded teacher uses that many threads); read_shards:
    reader passes the dialogues are split over (each pass reads the whole file and keeps its share: one
    pass outruns any teacher, so more pay only where parsing is the bottleneck); dialogues_per_shard: output rows are written every this many
    dialogues."""

    address: str | None = None
    actors: int = 2
    cpus_per_actor: float = 1.0
    read_shards: int = 1
    dialogues_per_shard: int = 20

    def actor_pool(self) -> dict[str, Any]:
        """map_batches arguments for the pool of actors."""
        import ray

        return {"compute": ray.data.ActorPoolStrategy(min_size=1, max_size=self.actors),
                "num_cpus": self.cpus_per_actor}


@dataclass
class TeacherSpec:
    """What an actor needs to build its own teacher (a teacher object does not travel between processes)."""

    spec: str
    server_model: str = "default"
    cache_path: str | None = None
    n_ctx: int | None = None
    retry_failed: bool = False
    threads: int | None = None
    qps: float | None = None

    def build(self):
        from dialpref.teachers.factory import make_teacher

        return make_teacher(self.spec, server_model=self.server_model, cache_path=self.cache_path, n_ctx=self.n_ctx,
                            retry_failed=self.retry_failed, threads=self.threads, qps=self.qps)


def connect(options: RayOptions) -> None:
    """Join the cluster at `options.address` (None: start a local one). One record per block: Ray Data
    hands an actor a whole block and returns its outputs when the block is done, so blocks of many dialogues
    would keep the other actors idle and the first result back until the end (measured: 12 records of 0.3 s
    all came back at once after the last; one per block, one by one). Ray's own progress bars off: the CLI
    shows its own, counted in labels or samples."""
    import ray

    ray.init(address=options.address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.target_max_block_size = 1  # bytes: every record closes its block
