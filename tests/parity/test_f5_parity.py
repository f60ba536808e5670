"""Our DiT and sampler against the f5-tts reference: same weights, same noise."""

from __future__ import annotations

import pytest
import torch

from dubops.speech.cfm import FlowMatching
from dubops.speech.dit import DiT
from dubops.speech.settings import DiTConfig, SamplerConfig
from tests.parity.f5_reference import load_reference

REF = load_reference()
pytestmark = pytest.mark.skipif(REF is None, reason="f5-tts is a dev extra: pip install .[dev]")

SMALL = DiTConfig(
    dim=64,
    depth=3,
    heads=4,
    dim_head=16,
    ff_mult=2,
    text_dim=32,
    conv_layers=2,
    text_num_embeds=20,
    mel_dim=100,
)


def _mel_passthrough() -> torch.nn.Module:
    """The reference CFM reads ``n_mel_channels`` off its mel module; we pass mels."""
    module = torch.nn.Identity()
    module.n_mel_channels = 100
    return module


def _pair(config: DiTConfig = SMALL, seed: int = 0):
    torch.manual_seed(seed)
    ref = REF.DiT(
        dim=config.dim,
        depth=config.depth,
        heads=config.heads,
        dim_head=config.dim_head,
        ff_mult=config.ff_mult,
        mel_dim=config.mel_dim,
        text_num_embeds=config.text_num_embeds,
        text_dim=config.text_dim,
        conv_layers=config.conv_layers,
    )
    with torch.no_grad():  # AdaLN-zero would make both outputs trivially zero
        for p in ref.parameters():
            p.normal_(0, 0.05)
    ours = DiT(config)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


def _inputs(b: int = 2, n: int = 40, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 100, generator=g)
    cond = torch.randn(b, n, 100, generator=g)
    text = torch.randint(0, 20, (b, 12), generator=g)
    if b > 1:
        text[1, 9:] = -1
    lens = torch.tensor([n, n - 7][:b])
    return x, cond, text, lens


@pytest.mark.parametrize(("drop_audio", "drop_text"), [(False, False), (True, False), (True, True)])
def test_one_forward_pass_matches(drop_audio, drop_text):
    ref, ours = _pair()
    x, cond, text, lens = _inputs()
    mask = torch.arange(x.shape[1])[None] < lens[:, None]
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        a = ref(
            x=x,
            cond=cond,
            text=text,
            time=t,
            mask=mask,
            drop_audio_cond=drop_audio,
            drop_text=drop_text,
        )
        b = ours(x, cond, text, t, mask, drop_audio, drop_text)
    assert a.abs().max() > 1e-2  # not trivially zero
    assert (a - b).abs().max() <= 1e-4


@pytest.mark.parametrize(("method", "batch"), [("euler", 1), ("euler", 2), ("midpoint", 2)])
def test_full_32_step_sampling_matches(method, batch):
    ref_dit, ours_dit = _pair()
    ref = REF.CFM(
        ref_dit,
        odeint_kwargs={"method": method},
        mel_spec_module=_mel_passthrough(),
        num_channels=100,
    )
    ours = FlowMatching(ours_dit)
    _, cond, text, _ = _inputs(b=batch)
    cond = cond[:, :15]
    lens = torch.tensor([15, 11][:batch])
    duration = torch.tensor([40, 33][:batch])
    with torch.no_grad():
        expected, _ = ref.sample(
            cond,
            text[:batch],
            duration,
            lens=lens,
            steps=32,
            cfg_strength=2.0,
            sway_sampling_coef=-1.0,
            seed=7,
        )
    sampler = SamplerConfig(nfe=32, method=method, sway_coef=-1.0, cfg_strength=2.0)
    got = ours.sample(cond, text[:batch], duration, lens=lens, seed=7, sampler=sampler)
    assert got.shape == expected.shape
    assert (expected - got).abs().max() <= 1e-4


def test_pruned_16_step_grid_matches():
    ref_dit, ours_dit = _pair(seed=3)
    ref = REF.CFM(ref_dit, mel_spec_module=_mel_passthrough(), num_channels=100)
    ours = FlowMatching(ours_dit)
    _, cond, text, _ = _inputs(b=1, seed=4)
    cond = cond[:, :10]
    with torch.no_grad():
        expected, _ = ref.sample(
            cond, text[:1], 30, steps=16, cfg_strength=2.0, sway_sampling_coef=-1.0, seed=3
        )
    got = ours.sample(cond, text[:1], 30, seed=3, sampler=SamplerConfig(nfe=16))
    assert (expected - got).abs().max() <= 1e-4


def test_f5_layout_checkpoints_load_strictly(tmp_path):
    """EMA .pt as F5's trainer writes it and the flat .safetensors of the releases."""
    from safetensors.torch import save_file

    from dubops.speech.pretrained import CheckpointError, load_dit

    ref_dit, _ = _pair(seed=5)
    cfm = REF.CFM(ref_dit, mel_spec_module=_mel_passthrough(), num_channels=100)
    ema = {f"ema_model.{k}": v.clone() for k, v in cfm.state_dict().items()}
    ema.update(initted=torch.tensor(True), step=torch.tensor(10))
    torch.save({"ema_model_state_dict": ema, "update": 10}, tmp_path / "model_10.pt")
    save_file(
        {k: v for k, v in ema.items() if k.startswith("ema_model.")},
        str(tmp_path / "model.safetensors"),
    )
    x, cond, text, _ = _inputs()
    t = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        expected = ref_dit(x=x, cond=cond, text=text, time=t)
        for name in ("model_10.pt", "model.safetensors"):
            model = load_dit(tmp_path / name, SMALL).eval()
            assert (model(x, cond, text, t) - expected).abs().max() <= 1e-5
    with pytest.raises(CheckpointError, match="depth"):
        load_dit(tmp_path / "model.safetensors", SMALL.model_copy(update={"depth": 4}))


def test_base_size_matches_f5tts_v1_base_layout():
    """Every parameter name and shape of F5TTS_v1_Base (built on the meta device)."""
    with torch.device("meta"):
        ref = REF.DiT(
            dim=1024,
            depth=22,
            heads=16,
            ff_mult=2,
            text_dim=512,
            conv_layers=4,
            text_num_embeds=2545,
            mel_dim=100,
        )
        ours = DiT(DiTConfig())
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == theirs
    assert sum(v.numel() for v in ours.parameters()) > 330e6
