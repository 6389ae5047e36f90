"""``scenellm.distributed`` on 2 gloo ranks (spawned processes) against one process: the
gradient step DDP takes on each rank's shard equals the one-process step on the whole
batch, and the collectives agree across ranks."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from scenellm.distributed import World, join, leave, wrap
from scenellm.model.codebook import Codebook

BATCH = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_and_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
                                torch.nn.Linear(1, 1))  # the last layer is never used
    x, y = torch.randn(BATCH, 5), torch.randn(BATCH, 1)
    return model, x, y


def step(model, x, y) -> None:
    """One SGD step on the mean squared error of ``model[:3]`` (the unused layer idles)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = torch.nn.functional.mse_loss(model[:3](x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


class HeadOnly(torch.nn.Module):
    """The model with a forward that skips its last layer (unused under DDP)."""

    def __init__(self, seq):
        super().__init__()
        self.seq = seq

    def forward(self, x, head_only: bool = True):
        return self.seq[:3](x) if head_only else self.seq(x)


def codebook_step(rows: list[int] | None, dead_threshold: float) -> torch.Tensor:
    """The codes after one training step of a fresh codebook on ``rows`` of a fixed batch
    (all rows when None); a high ``dead_threshold`` restarts codes."""
    torch.manual_seed(1)
    codebook = Codebook(codebook_size=4, code_dim=3, dead_threshold=dead_threshold)
    codebook.init_from_kmeans(torch.randn(32, 3), torch.Generator().manual_seed(2))
    batch = torch.randn(BATCH * 2, 3)
    picked = batch if rows is None else batch[[2 * i + j for i in rows for j in (0, 1)]]
    codebook.train()(picked, torch.Generator().manual_seed(3))
    return codebook.embed.clone()


def rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    world = join("cpu")
    seq, x, y = model_and_batch()
    mine = world.shard(list(range(BATCH)))
    replica = wrap(HeadOnly(seq), world, torch.device("cpu"))
    optimizer = torch.optim.SGD(replica.parameters(), lr=0.5)
    loss = torch.nn.functional.mse_loss(replica(x[mine]), y[mine])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    result = {
        "codebook": codebook_step(mine, dead_threshold=0.0),
        "restarted": codebook_step(mine, dead_threshold=5.0),
        "shard": mine,
        "weights": {k: v.detach().clone() for k, v in seq.state_dict().items()},
        "broadcast": world.broadcast(f"from {rank}"),
        "mean": world.mean({"a": float(rank), "b": 10.0 * rank}),
        "any": world.any(rank == 1),
        "none": world.any(False),
    }
    torch.save(result, f"{out}/rank{rank}.pt")
    leave()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(rank_main, args=(free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_ddp_step_on_two_shards_equals_one_step_on_the_whole_batch(ranks):
    seq, x, y = model_and_batch()
    step(seq, x, y)  # one process, all 6 rows; equal shards: the mean of means is the mean
    for r in ranks:
        for name, value in seq.state_dict().items():
            torch.testing.assert_close(r["weights"][name], value, rtol=1e-6, atol=1e-7)


def test_each_rank_takes_every_other_item_of_the_batch(ranks):
    assert [r["shard"] for r in ranks] == [[0, 2, 4], [1, 3, 5]]


def test_a_short_batch_is_padded_so_every_rank_steps():
    shards = [World(rank, 2).shard(["a", "b", "c"]) for rank in range(2)]
    assert shards == [["a", "c"], ["b", "a"]]
    assert World().shard(["a", "b", "c"]) == ["a", "b", "c"]


def test_collectives_agree_on_every_rank(ranks):
    for r in ranks:
        assert r["broadcast"] == "from 0"
        assert r["mean"] == {"a": 0.5, "b": 5.0}
        assert r["any"] is True and r["none"] is False


def test_one_process_world_is_the_identity():
    world = World()
    assert not world.active and world.is_main
    assert world.broadcast(3) == 3 and world.mean({"a": 2.0}) == {"a": 2.0}
    assert world.any(False) is False
    model = torch.nn.Linear(2, 2)
    assert wrap(model, world, torch.device("cpu")) is model


def test_codebook_ema_step_on_two_shards_equals_the_whole_batch_step(ranks):
    whole = codebook_step(None, dead_threshold=0.0)
    for r in ranks:
        torch.testing.assert_close(r["codebook"], whole, rtol=1e-5, atol=1e-6)


def test_restarted_codes_are_the_same_on_every_rank(ranks):
    assert not torch.equal(ranks[0]["restarted"], codebook_step(None, 0.0))  # codes moved
    torch.testing.assert_close(ranks[0]["restarted"], ranks[1]["restarted"], rtol=0, atol=0)
