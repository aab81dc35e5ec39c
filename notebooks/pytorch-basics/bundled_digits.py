from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import VisionDataset

from pytorch_in_action.data.digits import materialize_digits


class BundledDigits(VisionDataset):
    """The bundled digits with the signature of torchvision's MNIST / FashionMNIST.

    `download=True` writes the folder from scikit-learn's copy (no network), as `download=True`
    fetches the files for the built-in datasets. Samples are `(PIL image, int label)`, as there.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        folder = Path(self.root) / ("train" if train else "val")
        if download:
            materialize_digits(self.root)
        if not folder.is_dir():
            raise RuntimeError("Dataset not found. You can use download=True to write it")
        files = [(p, int(c.name)) for c in sorted(folder.iterdir()) for p in sorted(c.glob("*.png"))]
        # like MNIST: every image in memory as one uint8 tensor, labels in another
        self.data = torch.from_numpy(np.stack([np.asarray(Image.open(p)) for p, _ in files]))   # (N, 32, 32)
        self.targets = torch.tensor([label for _, label in files])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        img, target = Image.fromarray(self.data[i].numpy(), mode="L"), int(self.targets[i])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target
