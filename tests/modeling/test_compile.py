"""The torch.compile opt-in keeps results and parameter names."""

import pytest
import torch

from vrpsam.engine.compile import compile_model


@pytest.mark.slow
def test_compiled_encoder_gives_the_same_logits_and_parameter_names(make_episode):
    from vrpsam import build_vrp_sam

    torch.manual_seed(0)
    model = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs={"image_size": 128}).eval()
    names = list(model.state_dict())
    targets, references, masks = make_episode()
    with torch.no_grad():
        plain = model(targets, references, masks)
        compile_model(model, "all")
        compiled = model(targets, references, masks)
    torch.testing.assert_close(compiled, plain, atol=1e-3, rtol=1e-3)
    assert list(model.state_dict()) == names
