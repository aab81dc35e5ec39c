from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset


class DigitFolder(Dataset):
    """Images under `folder/<class>/*.png`, labelled by the sorted class folder names."""

    def __init__(self, folder: Path, transform=None):
        self.classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(str(p), self.class_to_idx[c]) for c in self.classes for p in sorted((folder / c).glob("*.png"))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        with Image.open(path) as im:
            img = im.convert("L")          # forces the decode while the file is open
        return (self.transform(img) if self.transform else img), label
