from torch.utils.data import IterableDataset, get_worker_info


class NaiveStream(IterableDataset):
    """The records 0..n-1, in order."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


class ShardedStream(NaiveStream):
    """The same records, each worker taking its own share."""

    def __iter__(self):
        info = get_worker_info()
        if info is None:                                   # main process: everything
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))   # worker k takes k, k+W, k+2W, ...
