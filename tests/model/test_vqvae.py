"""VQ-VAE: straight-through gradients, losses, training on clustered data, save/load, determinism."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from scenellm.model.vqvae import VQVAE, codes_in_use


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These tiny matmuls run fastest on one thread; two threads on a loaded 2-core machine
    spin against other jobs (measured: 2 s vs 30 s for the training test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clustered(n: int = 2000, clusters: int = 8, dim: int = 32, seed: int = 0) -> torch.Tensor:
    """n points (n, dim) around `clusters` Gaussian centres (std 3) with noise std 0.3."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(clusters, dim, generator=g)
    labels = torch.randint(clusters, (n,), generator=g)
    return centres[labels] + 0.3 * torch.randn(n, dim, generator=g)


def train(model: VQVAE, x: torch.Tensor, steps: int, seed: int = 0, batch: int = 256) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    for _ in range(steps):
        out = model(x[torch.randint(len(x), (batch,), generator=g)], generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()


def tiny(seed: int = 0, **kwargs) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE(in_dim=12, code_dim=4, codebook_size=8, hidden_dim=16, **kwargs)


def test_straight_through_gradient_reaches_encoder() -> None:
    model = tiny()
    x = torch.randn(32, 12)
    out = model(x)
    # With the straight-through estimator dL/dz equals dL/dq of the decoder at q.
    (grad_z,) = torch.autograd.grad(out.recon_loss, out.z, retain_graph=True)
    q = model.codebook.embed[out.indices].clone().requires_grad_(True)
    (grad_q,) = torch.autograd.grad(F.mse_loss(model.decoder(q), x), q)
    torch.testing.assert_close(grad_z, grad_q)
    assert grad_z.abs().sum() > 0
    out.recon_loss.backward()  # the reconstruction term alone trains the encoder
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_losses_and_outputs() -> None:
    model = tiny(beta=0.5).eval()
    x = torch.randn(3, 5, 12)  # leading dims are kept
    with torch.no_grad():
        out = model(x)
    codes = model.codebook.embed[out.indices]  # (3, 5, 4)
    assert out.indices.shape == (3, 5) and out.recon.shape == x.shape
    torch.testing.assert_close(out.quantized, codes)
    torch.testing.assert_close(out.commit_loss, 0.5 * ((out.z - codes) ** 2).mean())
    torch.testing.assert_close(out.recon_loss, ((out.recon - x) ** 2).mean())
    torch.testing.assert_close(out.loss, out.recon_loss + out.commit_loss)
    torch.testing.assert_close(out.recon, model.decode(out.indices))
    assert torch.equal(model.encode(x), out.indices)
    assert torch.equal(model.quantize(x), codes)
    counts = torch.bincount(out.indices.flatten(), minlength=8)
    assert out.usage == codes_in_use(counts) / 8
    assert 1.0 <= out.perplexity.item() <= codes_in_use(counts) + 1e-4


def test_encode_quantize_decode_never_update_the_codebook() -> None:
    model = tiny().train()
    before = {k: v.clone() for k, v in model.codebook.state_dict().items()}
    x = torch.randn(40, 12)
    model.decode(model.encode(x))
    model.quantize(x)
    for name, value in model.codebook.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_training_on_clusters_lowers_reconstruction_error() -> None:
    x = clustered()
    torch.manual_seed(0)
    model = VQVAE(in_dim=32, code_dim=16, codebook_size=32, hidden_dim=64)
    with torch.no_grad():
        before = model.eval()(x).recon_loss.item()
    train(model, x, steps=300)
    with torch.no_grad():
        out = model.eval()(x)
    assert out.recon_loss.item() < 0.1 * before, (before, out.recon_loss.item())
    # Eight well-separated clusters need at least eight codes to be reconstructed this well.
    assert codes_in_use(torch.bincount(out.indices, minlength=32)) >= 8


def test_safetensors_round_trip(tmp_path) -> None:
    x = clustered(n=300, dim=12)
    model = tiny()
    train(model, x, steps=5)
    model.eval()
    (tmp_path / "config.json").write_text(json.dumps(model.config()))
    save_file(model.state_dict(), tmp_path / "model.safetensors")

    loaded = VQVAE.from_config(json.loads((tmp_path / "config.json").read_text()))
    loaded.load_state_dict(load_file(tmp_path / "model.safetensors"))
    loaded.eval()
    assert loaded.config() == model.config()
    assert bool(loaded.codebook.initted)  # a reloaded trained model does not k-means again
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.recon, b.recon)
    assert torch.equal(model.quantize(x), loaded.quantize(x))


@pytest.mark.parametrize("kmeans_init", [True, False])
def test_same_seed_same_model(kmeans_init: bool) -> None:
    x = clustered(n=300, dim=12)
    runs = []
    for _ in range(2):
        model = tiny(seed=3, kmeans_init=kmeans_init)
        train(model, x, steps=10, seed=4)
        with torch.no_grad():
            runs.append((model.state_dict(), model.eval()(x)))
    (state_a, out_a), (state_b, out_b) = runs
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    assert torch.equal(out_a.recon, out_b.recon)
    assert torch.equal(out_a.indices, out_b.indices)
    other = tiny(seed=5, kmeans_init=kmeans_init)
    assert not torch.equal(other.encoder[0].weight, state_a["encoder.0.weight"])
