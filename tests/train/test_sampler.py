import pytest

from pytorch_in_action.train.sampler import ShardedBatchSampler


def test_ranks_are_disjoint_cover_and_match_one_process_batches():
    one = list(ShardedBatchSampler(103, 8, seed=3, world_size=1))
    r0 = list(ShardedBatchSampler(103, 4, seed=3, rank=0, world_size=2))
    r1 = list(ShardedBatchSampler(103, 4, seed=3, rank=1, world_size=2))
    assert len(r0) == len(r1) == 12 == len(one)
    for b, b0, b1 in zip(one, r0, r1):  # a 2-rank step sees exactly the items of the 1-rank step
        assert sorted(b) == sorted(b0 + b1) and not set(b0) & set(b1)


def test_epoch_reshuffles_and_skip_resumes_mid_epoch():
    s = ShardedBatchSampler(50, 5, seed=0)
    s.set_epoch(1)
    full = list(s)
    s.set_epoch(2)
    assert list(s) != full
    s.set_epoch(1)
    s.set_skip(4)
    assert list(s) == full[4:]


def test_eval_mode_keeps_every_item_once():
    shards = [list(ShardedBatchSampler(11, 4, shuffle=False, rank=r, world_size=3, drop_last=False,
                                       even_shards=False)) for r in range(3)]
    items = sorted(i for shard in shards for batch in shard for i in batch)
    assert items == list(range(11))
    assert [len(ShardedBatchSampler(11, 4, rank=r, world_size=3, drop_last=False, even_shards=False))
            for r in range(3)] == [len(s) for s in shards]


def test_with_epoch_pairs_and_bad_batch_size():
    s = ShardedBatchSampler(6, 3, seed=0, with_epoch=True)
    s.set_epoch(7)
    assert all(e == 7 for batch in s for e, _ in batch)
    with pytest.raises(ValueError):
        ShardedBatchSampler(6, 0)
