"""``vrpsam-predict``: segment a folder of images from one annotated reference.

    vrpsam-predict export_dir=EXPORT reference.image=ref.jpg reference.mask=ref_mask.png \\
        targets='photos/*.jpg' out_dir=predictions

Writes ``<name>_mask.png`` (0/255) and ``<name>_overlay.png`` per target into ``out_dir``.
"""

from __future__ import annotations

import glob
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from vrpsam.fileio import atomic_write
from vrpsam.predictor import VRPSAMPredictor, load_rgb
from vrpsam.train import CONFIG_PATH

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def list_targets(targets: str) -> list[Path]:
    """Images of a folder, a glob, or one file; a clear error when nothing matches."""
    path = Path(targets)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        found = [path]
    else:
        found = sorted(Path(p) for p in glob.glob(targets))
    if not found:
        raise FileNotFoundError(f"no target images found at {targets!r} (a folder, glob or image)")
    return found


def reference_annotation(reference: DictConfig) -> dict:
    """The one annotation given in ``reference.*`` as predictor keyword arguments."""
    given = {
        k: reference.get(k)
        for k in ("mask", "box", "points", "scribble")
        if reference.get(k) is not None
    }
    if len(given) != 1:
        raise ValueError(
            "give exactly one of reference.mask, reference.box, reference.points, "
            f"reference.scribble; got {sorted(given) or 'none'}"
        )
    kind, value = next(iter(given.items()))
    if kind in ("mask", "scribble"):
        return {kind: np.asarray(Image.open(value).convert("L"))}
    return {kind: OmegaConf.to_object(value) if OmegaConf.is_config(value) else value}


def save_png(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32)
    out[mask] = 0.5 * out[mask] + 0.5 * np.array([255, 30, 30])
    return out.astype(np.uint8)


def predict(cfg: DictConfig) -> list[Path]:
    """Run the predictor over the targets; returns the mask files written."""
    from tqdm import tqdm

    targets = list_targets(str(cfg.targets))
    out = Path(cfg.out_dir)
    predictor = VRPSAMPredictor.from_export(
        cfg.export_dir,
        sam_checkpoint=cfg.get("sam_checkpoint"),
        backbone_checkpoint=cfg.get("backbone_checkpoint"),
        device=cfg.get("device", "cpu"),
    )
    predictor.set_reference(cfg.reference.image, **reference_annotation(cfg.reference))
    written = []
    size = max(int(cfg.get("batch_size", 4)), 1)
    with tqdm(total=len(targets), desc="predict", unit="image") as bar:
        for start in range(0, len(targets), size):
            chunk = targets[start : start + size]
            images = [load_rgb(p) for p in chunk]
            for path, image, (mask, _, _) in zip(
                chunk, images, predictor.predict_batch(images), strict=True
            ):
                save_png(out / f"{path.stem}_mask.png", (mask * 255).astype(np.uint8))
                save_png(out / f"{path.stem}_overlay.png", overlay(image, mask))
                written.append(out / f"{path.stem}_mask.png")
            bar.update(len(chunk))
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    written = predict(cfg)
    print(f"wrote {len(written)} masks and overlays to {cfg.out_dir}")


if __name__ == "__main__":
    main()
