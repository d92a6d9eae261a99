"""Training losses on waveforms (batch, time)."""

from __future__ import annotations

import torch
from torch import Tensor


def si_sdr(estimate: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB per item, means removed (Le Roux et al., 2019)."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    target = target - target.mean(-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    return 10 * torch.log10((projection.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def stft_magnitude(x: Tensor, n_fft: int, hop: int) -> Tensor:
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
    return (spec.real.pow(2) + spec.imag.pow(2) + 1e-10).sqrt()


def multi_resolution_stft(
    estimate: Tensor, target: Tensor, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64))
) -> Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (Yamamoto et al., 2020).

    Unlike SI-SDR it depends on the output's level, so it also pins the output gain.
    """
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        est, ref = stft_magnitude(estimate, n_fft, hop), stft_magnitude(target, n_fft, hop)
        convergence = (ref - est).norm(dim=(-2, -1)) / (ref.norm(dim=(-2, -1)) + 1e-8)
        log_mag = (ref.log() - est.log()).abs().mean(dim=(-2, -1))
        total = total + (convergence + log_mag).mean()
    return total / len(resolutions)


def compressed_spectrum(
    estimate: Tensor, target: Tensor, n_fft: int = 512, hop: int = 128, power: float = 0.3, alpha: float = 0.3
) -> Tensor:
    """Power-law compressed complex + magnitude spectral MSE (Braun & Tashev, 2021), relative to the target.

    Compressing magnitudes to the power 0.3 weighs quiet time-frequency regions (residual noise between
    words, high bands) closer to how loud they sound; `alpha` mixes the complex (phase-aware) term."""
    window = torch.hann_window(n_fft, device=estimate.device, dtype=estimate.dtype)
    est = torch.stft(estimate, n_fft, hop, window=window, return_complex=True)
    ref = torch.stft(target, n_fft, hop, window=window, return_complex=True)
    est_mag = (est.real.pow(2) + est.imag.pow(2) + 1e-10).sqrt()
    ref_mag = (ref.real.pow(2) + ref.imag.pow(2) + 1e-10).sqrt()
    est_c, ref_c = est * (est_mag.pow(power) / est_mag), ref * (ref_mag.pow(power) / ref_mag)
    complex_term = (est_c - ref_c).abs().pow(2).mean(dim=(-2, -1))
    magnitude_term = (est_mag.pow(power) - ref_mag.pow(power)).pow(2).mean(dim=(-2, -1))
    energy = ref_mag.pow(2 * power).mean(dim=(-2, -1)) + 1e-8
    return ((alpha * complex_term + (1 - alpha) * magnitude_term) / energy).mean()


SPECTRAL_LOSSES = {"mrstft": multi_resolution_stft, "compressed": compressed_spectrum}


def enhancement_loss(
    estimate: Tensor, target: Tensor, stft_weight: float, spectral: str = "mrstft"
) -> tuple[Tensor, Tensor]:
    """(loss to minimise, mean SI-SDR in dB): -SI-SDR plus `stft_weight` times the `spectral` loss."""
    score = si_sdr(estimate, target).mean()
    loss = -score
    if stft_weight > 0:
        loss = loss + stft_weight * SPECTRAL_LOSSES[spectral](estimate, target)
    return loss, score
