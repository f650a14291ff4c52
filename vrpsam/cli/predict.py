r"""``vrpsam-predict``: the Hydra entry point of :func:`vrpsam.predictor.folder.predict`.

    vrpsam-predict export_dir=EXPORT reference.image=ref.jpg reference.mask=ref_mask.png \\
        targets='photos/*.jpg' out_dir=predictions
    vrpsam-predict export_dir=EXPORT bank=bank/ targets='photos/*.jpg' out_dir=predictions

With ``bank=`` (a folder from ``vrpsam-bank build``) every class of the bank is segmented: label
maps, overlays with a legend, and ``bank_predictions.json``.

Exit status 1 when some targets could not be read (the others are segmented).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vrpsam.cli.errors import reported
from vrpsam.conf import CONFIG_DIR
from vrpsam.predictor.folder import predict


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
@reported
def main(cfg: DictConfig) -> None:
    report = predict(cfg)
    what = "label maps and overlays" if cfg.get("bank") is not None else "masks and overlays"
    print(
        f"{len(report.written)} targets segmented ({what} in {cfg.out_dir}), "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        for path, reason in report.failed:
            print(f"failed: {path}: {reason}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
