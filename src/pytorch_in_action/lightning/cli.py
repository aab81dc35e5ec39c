"""`python -m pytorch_in_action.lightning.cli fit --config run.yaml`: LightningCLI over the image classifier.

Every constructor argument of `ImageClassifier`, `ImageFolderDataModule` and `Trainer` becomes a flag and a
YAML key (`model.lr`, `data.batch_size`, `trainer.max_epochs`); `--print_config` shows the resolved YAML.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from pytorch_in_action.lightning.datamodule import ImageFolderDataModule
from pytorch_in_action.lightning.module import ImageClassifier


class ImageClassifierCLI(LightningCLI):
    """Links the number of classes from the data to the model, so a YAML file cannot get them out of step."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
        parser.link_arguments("data", "model.num_classes", compute_fn=_num_classes, apply_on="instantiate")


def _num_classes(dm: ImageFolderDataModule) -> int:
    dm.prepare_data()
    dm.setup("fit")
    return len(dm.classes)


def cli_main(args: list[str] | None = None, run: bool = True) -> ImageClassifierCLI:
    """Build (and by default run) the CLI; `args` as a list, e.g. ["fit", "--config", "run.yaml"]."""
    return ImageClassifierCLI(ImageClassifier, ImageFolderDataModule, subclass_mode_data=True, args=args, run=run,
                              save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    cli_main()
