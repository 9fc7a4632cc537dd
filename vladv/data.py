"""Batching: image indices → :class:`PairBatch` es through a DataLoader (workers stream images)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Subset

from vladv.types import ImageTextDataset, PairBatch


class PairCollate:
    """Collate ``(image, index)`` items into a PairBatch holding all captions of those images."""

    def __init__(self, dataset: ImageTextDataset):
        self.captions = dataset.captions
        self.img2txt = dataset.img2txt

    def __call__(self, items: Sequence[tuple[torch.Tensor, int]]) -> PairBatch:
        images = torch.stack([img for img, _ in items])
        image_ids = torch.tensor([i for _, i in items], dtype=torch.long)
        text_ids: list[int] = []
        txt2img: list[int] = []
        for local, (_, i) in enumerate(items):
            text_ids.extend(self.img2txt[i])
            txt2img.extend([local] * len(self.img2txt[i]))
        return PairBatch(
            images=images,
            texts=[self.captions[t] for t in text_ids],
            txt2img=torch.tensor(txt2img, dtype=torch.long),
            image_ids=image_ids,
            text_ids=torch.tensor(text_ids, dtype=torch.long),
        )


def pair_loader(
    dataset: ImageTextDataset,
    batch_size: int,
    num_workers: int = 0,
    indices: Sequence[int] | None = None,
) -> DataLoader:
    """Batches of whole images with all their captions, in dataset order (or ``indices`` order)."""
    source = dataset if indices is None else Subset(dataset, list(indices))
    return DataLoader(
        source,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=PairCollate(dataset),
        persistent_workers=False,
    )


class TensorImageDataset(ImageTextDataset):
    """An in-memory dataset: uint8 (N, 3, H, W) or float images in [0, 1] with their captions."""

    def __init__(
        self,
        images: torch.Tensor,
        captions_per_image: Sequence[Sequence[str]],
        name: str = "tensors",
        split: str = "test",
    ):
        captions: list[str] = []
        img2txt: list[list[int]] = []
        for caps in captions_per_image:
            img2txt.append(list(range(len(captions), len(captions) + len(caps))))
            captions.extend(caps)
        super().__init__(captions, img2txt)
        if images.shape[0] != len(img2txt):
            raise ValueError("one caption list per image is required")
        self.images = images
        self.name, self.split = name, split

    def load_image(self, index: int) -> torch.Tensor:
        img = self.images[index]
        return img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
