import pickle

import pytest
import torch

from vladv.checkpoints import load_state_dict, save_state_dict
from vladv.errors import CheckpointError
from vladv.testing import TinyBackbone


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_safetensors_round_trip(tmp_path):
    model = TinyBackbone(seed=3)
    path = model.save(tmp_path / "m.safetensors")
    other = TinyBackbone(seed=4)
    other.load_weights(path)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(model.encode_image(x), other.encode_image(x))


def test_weights_only_torch_file_loads(tmp_path):
    model = TinyBackbone(seed=3)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "m.pt")
    assert set(load_state_dict(tmp_path / "m.pt")) == set(model.state_dict())


@pytest.mark.parametrize(
    "name,payload,match",
    [
        ("bad.safetensors", b"not a safetensors file", "corrupt safetensors"),
        ("evil.pt", pickle.dumps(Evil()), "cannot load checkpoint"),
        ("list.pt", None, "does not hold a state dict"),
    ],
)
def test_corrupt_or_untrusted_checkpoints_are_refused(tmp_path, capsys, name, payload, match):
    path = tmp_path / name
    if payload is None:
        torch.save([1, 2], path)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=match):
        load_state_dict(path)
    assert "pwned" not in capsys.readouterr().out


def test_missing_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "nope.safetensors")
    save_state_dict({"w": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="does not fit"):
        TinyBackbone().load_weights(tmp_path / "x.safetensors")
    # every key present but one of the wrong shape: still a one-line CheckpointError
    state = {k: v.clone() for k, v in TinyBackbone().state_dict().items()}
    name = next(k for k, v in state.items() if v.ndim == 2)
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    save_state_dict(state, tmp_path / "shape.safetensors")
    with pytest.raises(CheckpointError, match=f"does not fit .*{name.split('.')[-1]}"):
        TinyBackbone().load_weights(tmp_path / "shape.safetensors")
