"""Many references in the same targets: each target is embedded by SAM once, and the logits are
those of one reference at a time."""

from unittest import mock

import pytest
import torch

from vrpsam.baselines.gpsam import GPSAM
from vrpsam.baselines.persam import PerSAM, PerSAMF


@pytest.fixture(params=["persam", "persam_f", "gpsam"])
def method(request, tiny_sam, resnet18):
    if request.param == "persam":
        return PerSAM(sam=tiny_sam)
    if request.param == "persam_f":
        return PerSAMF(sam=tiny_sam, iterations=5)
    return GPSAM(backbone=resnet18, sam=tiny_sam)


def test_objects_share_each_targets_embedding_and_match_one_at_a_time(method, make_episode):
    references = [make_episode(seed=s, box=box) for s, box in ((1, (20, 70)), (2, (50, 110)))]
    states = [method.prepare(e.reference_images, e.reference_masks, "mask", e.seed)
              for e in references]  # fmt: skip
    gen = torch.Generator().manual_seed(7)
    targets = torch.randn(3, 3, 128, 128, generator=gen)
    sizes = torch.tensor([[128, 128], [96, 128], [128, 80]])
    with mock.patch.object(method.sam, "encode", wraps=method.sam.encode) as counted:
        one_at_a_time = torch.stack([method.predict_targets(s, targets, sizes) for s in states])
    assert counted.call_count == 6  # without the memo: every target for every reference

    with mock.patch.object(method.sam, "encode", wraps=method.sam.encode) as counted:
        shared = method.predict_objects(states, targets, sizes)
    assert shared.shape == (2, 3, 128, 128)
    torch.testing.assert_close(shared, one_at_a_time)
    # Three targets, two references: three target embeddings, none for the (prepared) references.
    assert counted.call_count == 3
    assert method._target_memo is None  # the memo lives only for the call


def test_a_memo_key_tells_targets_of_other_sizes_apart(tiny_sam):
    method = PerSAM(sam=tiny_sam)
    image = torch.randn(3, 128, 128)
    with method.shared_targets():
        square = method.encode_target(image, (128, 128))
        wide = method.encode_target(image, (64, 128))
        again = method.encode_target(image, (128, 128))
    assert again is square
    assert wide.frame != square.frame
