"""Benchmarks: scoring and alignment, the peer adapters, the MAC counter, and the `bench` commands end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import assert_clean_failure, run_cli

import realtime
from benchmarks.peers import SYSTEMS, Options, System, select, triage
from benchmarks.peers.base import FrameStream
from benchmarks.quality import run_file
from training.metrics import estimate_delay, score, si_sdr

DATA = Path(__file__).parents[1] / "data"
RATE = 16000
PEERS = Path(__file__).resolve().parents[3] / "shared" / "peers"
OPTIONS = Options(peers=PEERS if PEERS.is_dir() else None)
# Output lag of each streaming adapter at 160-sample blocks, in samples: DTLN 512 - 128, GTCRN 512 - 256,
# RNNoise its 20 ms, ours the engine's window overlap (no buffering at a multiple of the hop), DFN self-compensated.
DELAYS = {"dtln": 384, "gtcrn": 256, "rnnoise": 320, "ours_stream": 32, "deepfilternet3": 0}


def speech(index: int = 0) -> np.ndarray:
    return sf.read(DATA / "speech" / f"ls_{index}.flac", dtype="float32")[0]


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`clean` plus `noise` scaled to `snr_db`, the noise made zero-mean and orthogonal to the zero-mean clean."""
    s = clean - clean.mean()
    n = noise - noise.mean()
    n = n - (n @ s) / (s @ s) * s
    n *= np.sqrt((s @ s) / (n @ n) / 10 ** (snr_db / 10))
    return (clean + n).astype(np.float32)


def noisy_example() -> tuple[np.ndarray, np.ndarray]:
    clean = speech(0)
    return mix(clean, sf.read(DATA / "noise" / "street_music.flac", dtype="float32")[0], 5.0), clean


def runnable(key: str) -> System:
    (system,) = select([key], OPTIONS)
    if reason := system.missing():
        pytest.skip(reason)
    system.load()
    return system


# -- scoring and alignment ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("snr_db", [0.0, 5.0, 17.5])
def test_known_snr_mix_gives_that_si_sdr(snr_db: float) -> None:
    clean = speech(1)
    noisy = mix(clean, sf.read(DATA / "noise" / "siren.flac", dtype="float32")[0], snr_db)
    assert si_sdr(noisy, clean) == pytest.approx(snr_db, abs=1e-3)
    assert si_sdr(0.25 * noisy, clean) == pytest.approx(snr_db, abs=1e-3)  # scale-invariant


@pytest.mark.parametrize("delay", [1, 37, 800])
def test_delayed_copy_scores_as_the_original(delay: int) -> None:
    noisy, clean = noisy_example()
    delayed = np.concatenate([np.zeros(delay, np.float32), noisy])
    original, _, _ = score(clean, noisy)
    values, errors, found = score(clean, delayed, max_delay=1600)
    assert (found, errors) == (delay, {})
    assert values == pytest.approx(original, abs=1e-9)
    assert estimate_delay(noisy, delayed, 1600) == delay


class Delayed(System):
    """A fake system: the noisy input, late by `delay` samples."""

    key, label, delay = "delayed", "delayed copy", 123

    def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros(self.delay, np.float32), noisy])


def test_benchmark_aligns_each_output_to_its_input() -> None:
    noisy, clean = noisy_example()
    reference = run_file("x", noisy, clean, select(["noisy"], OPTIONS)[0], 1600).score
    late = run_file("x", noisy, clean, Delayed(OPTIONS), 1600).score
    assert late.delay == Delayed.delay and reference.delay == 0
    assert late.values == pytest.approx(reference.values, abs=1e-9)


def test_a_failing_system_is_reported_for_that_file() -> None:
    class Broken(System):
        key, label = "broken", "broken"

        def process(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
            raise RuntimeError("model exploded")

    noisy, clean = noisy_example()
    outcome = run_file("x", noisy, clean, Broken(OPTIONS), 1600)
    assert outcome.score.values == {} and "model exploded" in outcome.score.errors["run"]


def test_oracle_mask_beats_the_noisy_input() -> None:
    noisy, clean = noisy_example()
    oracle = runnable("oracle_irm").process(noisy, clean)
    assert len(oracle) == len(noisy)
    assert si_sdr(oracle, clean) > si_sdr(noisy, clean) + 5


# -- peer adapters ------------------------------------------------------------------------------------------------
class Doubler(FrameStream):
    def __init__(self) -> None:
        super().__init__(hop=48, tail=100)

    def step(self, hop: np.ndarray) -> np.ndarray:
        assert len(hop) == 48
        return 2 * hop


@pytest.mark.parametrize("block", [1, 7, 48, 160, 1000])
def test_frame_stream_turns_any_block_into_whole_hops(block: int) -> None:
    x = np.random.default_rng(0).standard_normal(1003).astype(np.float32)
    stream = Doubler()
    out = np.concatenate([*(stream.feed(x[i : i + block]) for i in range(0, len(x), block)), stream.flush()])
    assert len(out) >= len(x) + 100 and len(out) % 48 == 0
    np.testing.assert_array_equal(out[: len(x)], 2 * x)


@pytest.mark.parametrize("key", [s.key for s in SYSTEMS if s.streaming])
def test_streaming_output_does_not_depend_on_the_block_size(key: str) -> None:
    system = runnable(key)
    noisy, _ = noisy_example()
    outputs = []
    for block in (64, 160, 1024):  # multiples of our hop: the engine adds no buffering delay
        stream = system.stream(block)
        padded = np.concatenate([noisy, np.zeros(-len(noisy) % block, np.float32)])
        out = [stream.feed(padded[i : i + block]) for i in range(0, len(padded), block)]
        outputs.append(np.concatenate(out)[: len(noisy) - 2000])
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], atol=2e-4)


@pytest.mark.parametrize("key", sorted(DELAYS))
def test_streaming_adapters_lag_by_their_documented_delay(key: str) -> None:
    noisy, clean = noisy_example()
    out = runnable(key).process(noisy, clean)
    assert len(out) >= len(noisy)
    assert estimate_delay(noisy, out, 1600) == DELAYS[key]


def test_absent_packages_and_files_are_skipped_with_the_reason(tmp_path: Path) -> None:
    class Absent(System):
        key, label, package = "absent", "absent peer", "no_such_package_for_rtdenoise"

    options = Options(peers=tmp_path / "nowhere", checkpoint=tmp_path / "none.pt")
    ready, skipped = triage([Absent(options), *select(["dtln", "ours_torch", "noisy"], options)])
    assert [s.key for s in ready] == ["noisy"]
    assert "pip install 'rtdenoise[bench]'" in skipped["absent peer"]
    assert str(tmp_path / "nowhere" / "dtln" / "model_1.onnx") in skipped["DTLN (16 kHz)"]
    torch_installed = importlib.util.find_spec("torch") is not None
    assert ("none.pt" if torch_installed else "'torch'") in skipped["ours, offline (torch)"]


def test_torch_checkpoint_runs_offline_like_the_network(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from model.config import TasNetConfig
    from model.conv_tasnet import ConvTasNet
    from model.int8 import as_exported

    torch.manual_seed(0)
    config = TasNetConfig(N=16, B=8, H=16, X=2, R=1)
    net = ConvTasNet(config).eval()
    torch.save({"model": net.state_dict(), "model_config": config.to_dict()}, tmp_path / "m.pt")
    (system,) = select(["ours_torch"], Options(checkpoint=tmp_path / "m.pt"))
    assert system.missing() is None
    system.load()
    noisy, clean = noisy_example()
    with torch.inference_mode():
        expected = as_exported(net)(torch.from_numpy(noisy)).numpy()  # what its export computes: the int8 grid
    np.testing.assert_allclose(system.process(noisy, clean), expected, atol=1e-6)


# -- MAC counting -------------------------------------------------------------------------------------------------
def test_onnx_macs_of_a_known_graph(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from benchmarks.macs import onnx_macs

    weights = {"w": (4, 2, 3), "m": (8, 5), "lw": (1, 16, 5), "lr": (1, 16, 4)}
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),  # [1, 2, T] -> [1, 4, T - 2]: 4 * 8 * 2 * 3 at T = 10
            helper.make_node("MatMul", ["c", "m"], ["y"]),  # [1, 4, 8] x [8, 5]: 4 * 5 * 8
            helper.make_node("LSTM", ["y", "lw", "lr"], ["h"], hidden_size=4),  # 1 step x 4 batch x 16 x (5 + 4)
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "T"])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in weights.items()],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert onnx_macs(path, {"x": [1, 2, 10]}) == 192 + 160 + 576
    with pytest.raises(ValueError, match="not static"):
        onnx_macs(path)


# -- the commands -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three pairs at 0, 10 and 20 dB from the test corpora, and their CSV."""
    root = tmp_path_factory.mktemp("paired")
    (root / "clean").mkdir()
    (root / "noisy").mkdir()
    noises = sorted((DATA / "noise").glob("*.flac"))
    rows = []
    for i, (snr, noise) in enumerate(zip((0, 10, 20), noises)):
        clean = speech(i)
        sf.write(root / "clean" / f"p{i}.flac", clean, RATE)
        sf.write(root / "noisy" / f"p{i}.flac", mix(clean, sf.read(noise, dtype="float32")[0], snr), RATE)
        rows.append({"name": f"p{i}.flac", "snr_db": snr})
    with (root / "pairs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["name", "snr_db"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[0] > 100


def test_bench_quality_writes_reports_and_plots(paired: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = run_cli(
        "bench", "quality", "--clean", paired / "clean", "--noisy", paired / "noisy", "--csv", paired / "pairs.csv",
        "--systems", "noisy", "oracle_irm", "ours_stream", "dtln", "--peers", tmp_path / "no-peers",
        "--jobs", "1", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads((out / "quality.json").read_text())
    assert list(report["systems"]) == ["noisy", "oracle_irm", "ours_stream"]
    assert "no-peers" in report["skipped"]["DTLN (16 kHz)"]
    systems = report["systems"]
    assert systems["noisy"]["delay_ms"] == {"median": 0.0, "min": 0.0, "max": 0.0}
    assert systems["ours_stream"]["delay_ms"]["median"] == 2.0
    assert list(systems["noisy"]["per_snr"]) == ["0 dB", "10 dB", "20 dB"]
    assert systems["noisy"]["per_snr"]["10 dB"]["si_sdr"] == pytest.approx(10.0, abs=1e-3)
    assert systems["oracle_irm"]["overall"]["pesq_wb"] > systems["noisy"]["overall"]["pesq_wb"]
    markdown = (out / "quality.md").read_text()
    assert "Command: `denoise bench quality --clean" in markdown and "DTLN (16 kHz): " in markdown
    assert len(report["examples"]) == 3
    for example in report["examples"]:
        assert_png(Path(example["png"]))
        assert sf.info(example["ours"]).frames == sf.info(example["noisy"]).frames
    for name in ("quality_per_snr.png", "quality_vs_rtf.png"):
        assert_png(out / "plots" / name)


def test_bench_quality_without_data_says_what_to_give(tmp_path: Path) -> None:
    assert "--noisy" in assert_clean_failure(run_cli("bench", "quality", "--clean", tmp_path, cwd=tmp_path))


def test_publish_reads_its_run_folder_and_names_a_missing_checkpoint(tmp_path: Path) -> None:
    stderr = assert_clean_failure(run_cli("publish", "--run", tmp_path / "nowhere", "--name", "unused", cwd=tmp_path))
    assert "nowhere/best.pt" in stderr


def test_publish_that_fails_to_score_leaves_the_shipped_models_as_they_were(tmp_path: Path) -> None:
    assets = Path(realtime.__file__).parent / "assets"
    before = sorted(p.name for p in assets.iterdir())
    stderr = assert_clean_failure(
        run_cli(
            "publish",
            "--run",
            assets,
            "--checkpoint",
            "fast.pt",
            "--name",
            "unused-publish-test",
            "--test-root",
            tmp_path / "nowhere",
            "--report",
            tmp_path / "report.md",
            cwd=tmp_path,
        )  # fmt: skip
    )
    assert "nowhere" in stderr
    assert sorted(p.name for p in assets.iterdir()) == before  # nothing exported into them, no staging left
    assert not (tmp_path / "report.md").exists()


def test_bench_speed_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = run_cli(
        "bench", "speed", "--seconds", "1.5", "--blocks", "32", "160", "--systems", "ours_stream", "ours_graphs",
        "rnnoise", "--train-steps", "0", "--rounds", "3", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads((out / "speed.json").read_text())
    ours = report["systems"]["ours_stream"]
    assert [row["block"] for row in ours["blocks"]] == [32, 160]
    for entry in report["systems"].values():  # each block size: the median of three rounds
        assert all(
            len(row["rtf_rounds"]) == 3 and row["rtf"] == sorted(row["rtf_rounds"])[1] for row in entry["blocks"]
        )
    assert all(row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] for row in ours["blocks"])
    assert report["model"]["parameters"] > 0 and report["model"]["training"] is None
    markdown = (out / "speed.md").read_text()
    assert "Command: `denoise bench speed" in markdown and "| ours, streaming (engine) |" in markdown
    assert "| ours, streaming (ONNX short-run graphs) |" in markdown
    assert ("our engine RTF" in markdown) == ("rnnoise" in report["systems"])
    if "rnnoise" in report["systems"]:
        assert (
            "ours / RNNoise at 32-sample blocks" in markdown
            and "ours / DTLN at 160-sample blocks: not measured" in markdown
        )
    profile = ours["profile"]
    assert profile["runner"] == "StepRunner"  # the shipped model has the compiled step: live runs it
    assert profile["runs"] > 0 and profile["graph"] == "short-run"  # what the ONNX engine runs, profiled
    assert {"Gemm", "LayerNormalization"} <= {row["op"] for row in profile["ops"]}
    assert all(0 < profile[f"{name}_run_us"] < profile[f"{name}_feed_us"] for name in ("default", "onnx"))
    chain = profile["live_chain"]
    assert chain["callbacks_per_second"] == 750
    assert all(chain[k] > 0 for k in ("callback", "chain", "callback_cold", "chain_cold", "down", "engine", "up"))
    assert chain["chain"] < chain["callback"] and chain["chain_cold"] < chain["callback_cold"]
    assert chain["down"] + chain["engine"] + chain["up"] < chain["parts"]
    assert "own work per part" in markdown
    assert "## Profile summary" in markdown and "| LayerNormalization |" in markdown
    assert_png(out / "plots" / "speed_rtf_vs_block.png")


def test_bench_architectures_reports_every_family_run_beside_the_references(paired: Path, tmp_path: Path) -> None:
    """Two tiny families' runs: each best checkpoint exported, scored on the given set and timed, with the noisy
    input and the oracle IRM as floor and ceiling, and the learning curves plotted."""
    import json

    runs = tmp_path / "families"
    tiny = {"stft-unet": ["L=32", "C=4", "D=2"], "lstm-tasnet": ["N=16", "L=16", "H=16", "R=1"]}
    for arch, options in tiny.items():
        result = run_cli(
            *("train", "--arch", arch, *(a for o in options for a in ("--model-option", o))),
            *("--speech", DATA / "speech", "--noise", DATA / "noise", "--out", runs / arch, "--allow-non-commercial"),
            *("--batch-size", "2", "--seconds", "0.5", "--threads", "1", "--steps", "4", "--val-every", "2"),
            env={"RTDENOISE_CACHE": str(tmp_path / "cache")},
        )
        assert result.code == 0, result.stderr
    out = tmp_path / "architectures.md"
    result = run_cli(
        *("bench", "architectures", "--runs", runs, "--noisy", paired / "noisy", "--clean", paired / "clean"),
        *("--rounds", "1", "--out", out),
    )
    assert result.code == 0, result.stderr
    text = out.read_text()
    for label in ("STFT U-Net", "LSTM TasNet", "noisy input", "oracle IRM"):
        assert sum(label in line for line in text.splitlines() if line.startswith("| ")) >= 1, label
    document = json.loads(out.with_suffix(".json").read_text())
    assert set(document["families"]) == set(tiny) and document["winner_at_common_budget"] in tiny
    for entry in document["families"].values():
        assert set(entry["rtf"]) == {"32", "160"} and entry["macs_per_second"] > 0
        assert 1 <= entry["dev"]["pesq_wb"] <= 4.64
    assert document["references"]["oracle_irm"]["si_sdr"] > document["references"]["noisy"]["si_sdr"] + 3
    assert (runs / "stft-unet" / "best.onnx").is_file()
    assert_png(out.with_suffix(".png"))
