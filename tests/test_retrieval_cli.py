"""`minicon embed`, `minicon search`, `minicon dedup` on tiny runs: results, files, and every bad input as one line."""

import json
import pickle

import numpy as np
import pytest

from minicon.augment import ToFloat
from minicon.cli import main
from minicon.data import load_cifar10
from minicon.evaluate import extract_features
from minicon.retrieval import Index, brute_force_top_k, load_run
from minicon.retrieval.faiss_search import faiss_available
from minicon.train import Trainer

from .cifar_fixtures import shrink_layouts, write_binary
from .test_train import tiny_config


@pytest.fixture
def data(tmp_path, monkeypatch):
    shrink_layouts(monkeypatch)  # 15 train and 4 test images
    monkeypatch.delenv("MINICON_DATA_DIR", raising=False)
    write_binary(tmp_path / "data", "cifar10")
    return tmp_path / "data"


def train(tmp_path, data, name, **overrides):
    config = tiny_config(batch_size=4, knn_train=8, knn_test=4, data_dir=str(data), epochs=1, **overrides)
    Trainer(config, tmp_path / name, progress=False).fit()
    return tmp_path / name


@pytest.fixture
def run(tmp_path, data):
    return train(tmp_path, data, "run")


@pytest.fixture
def clip_run(tmp_path, data):
    return train(tmp_path, data, "clip", method="clip")


def write_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, picture in enumerate(images):
        Image.fromarray(picture.transpose(1, 2, 0)).save(folder / f"img{i:02d}.png")


def embed(run_dir, source, out, *extra):
    assert main(["embed", str(run_dir), "--images", str(source), "--out", str(out), *extra]) == 0
    return Index.load(out)


def search(capsys, *args):
    assert main(["search", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, argv):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minicon: error: ") and "\n" not in err, err
    return err


# --- embed ----------------------------------------------------------------------------------

def test_embed_a_cifar_split_records_rows_labels_and_the_run(run, data, tmp_path, capsys):
    index = embed(run, "cifar10:train", tmp_path / "i.npz")
    assert "embedded 15 images of cifar10:train" in capsys.readouterr().out
    images, labels, names = load_cifar10(data, "train", download=False)
    assert index.rows == [f"cifar10:train:{i}" for i in range(15)] and index.labels.tolist() == labels.tolist()
    _, model = load_run(run)
    want = extract_features(model, images, transform=ToFloat())
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(index.features, want, atol=1e-6)
    assert index.meta["feature"] == "h" and index.meta["method"] == "simclr" and index.meta["class_names"] == names
    projected = embed(run, "cifar10:train", tmp_path / "z.npz", "--projected")
    assert projected.meta["feature"] == "z" and projected.dim == 128
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_embed_a_folder_of_png_and_jpeg_files(run, tmp_path, capsys):
    from PIL import Image

    pictures = np.random.default_rng(0).integers(0, 256, (3, 3, 40, 20), dtype=np.uint8)  # resized to 32x32
    write_pngs(tmp_path / "pics" / "sub", pictures)
    Image.fromarray(pictures[0, 0]).save(tmp_path / "pics" / "grey.JPG")
    index = embed(run, tmp_path / "pics", tmp_path / "f.npz")
    assert index.rows == ["grey.JPG", "sub/img00.png", "sub/img01.png", "sub/img02.png"]
    assert (index.labels == -1).all() and index.meta["class_names"] == []


def test_an_image_that_cannot_be_decoded_is_named_and_nothing_is_written(run, tmp_path, capsys):
    write_pngs(tmp_path / "pics", np.zeros((2, 3, 32, 32), np.uint8))
    (tmp_path / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    err = one_line_error(capsys, ["embed", run, "--images", tmp_path / "pics", "--out", tmp_path / "i.npz"])
    assert f"{tmp_path / 'pics' / 'broken.png'}: cannot be decoded as an image" in err
    assert not (tmp_path / "i.npz").exists()


@pytest.mark.parametrize("argv, message", [
    (["--images", "cifar11:test"], "neither a folder nor one of cifar10:train"),
    (["--out", "nowhere/i.npz"], "cannot be written (its folder nowhere does not exist); nothing was written"),
])
def test_embed_refuses_bad_sources_and_outputs(run, tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"--images": "cifar10:test", "--out": "i.npz"} | dict(zip(argv[::2], argv[1::2]))
    err = one_line_error(capsys, ["embed", run, *[x for kv in args.items() for x in kv]])
    assert message in err


def test_embed_of_a_folder_that_is_not_a_run(tmp_path, data, capsys):
    err = one_line_error(capsys, ["embed", tmp_path, "--images", "cifar10:test", "--out", tmp_path / "i.npz"])
    assert err == f"minicon: error: {tmp_path} is not a run folder (no config.json)"


# --- search ---------------------------------------------------------------------------------

def test_search_by_row_leaves_the_row_out_and_ranks_like_brute_force(run, tmp_path, capsys):
    index = embed(run, "cifar10:train", tmp_path / "i.npz")
    capsys.readouterr()
    report = search(capsys, tmp_path / "i.npz", "--query", "3", "--k", "5")
    rows = [r["row"] for r in report["results"]]
    _, want = brute_force_top_k(index.features[3:4], index.features, 6)
    assert rows == [r for r in want[0].tolist() if r != 3][:5] and report["excluded_query_row"]
    sims = [r["similarity"] for r in report["results"]]
    assert sims == sorted(sims, reverse=True) and report["query"]["source"] == "cifar10:train:3"
    assert report["results"][0]["class"] == index.meta["class_names"][report["results"][0]["label"]]


def test_search_by_image_file_finds_that_image_first_and_draws_a_grid(run, tmp_path, capsys):
    pictures = np.random.default_rng(1).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    write_pngs(tmp_path / "pics", pictures)
    embed(run, tmp_path / "pics", tmp_path / "f.npz")
    capsys.readouterr()
    report = search(capsys, tmp_path / "f.npz", "--query", tmp_path / "pics" / "img04.png", "--k", "3",
                    "--grid", tmp_path / "g.png")
    assert report["results"][0]["source"] == "img04.png" and report["results"][0]["similarity"] > 0.9999
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not faiss_available()[0], reason=faiss_available()[1] or "faiss present")
def test_search_with_faiss_flat_gives_the_exact_engine_results(run, tmp_path, capsys):
    embed(run, "cifar10:train", tmp_path / "i.npz")
    capsys.readouterr()
    exact = search(capsys, tmp_path / "i.npz", "--query", "0", "--k", "4")
    flat = search(capsys, tmp_path / "i.npz", "--query", "0", "--k", "4", "--engine", "faiss")
    assert [r["row"] for r in exact["results"]] == [r["row"] for r in flat["results"]]


def test_bad_queries_are_one_line(run, tmp_path, capsys):
    index = embed(run, "cifar10:train", tmp_path / "i.npz")
    np.save(tmp_path / "short.npy", np.ones(index.dim - 1, np.float32))
    np.save(tmp_path / "zero.npy", np.zeros(index.dim, np.float32))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    path = tmp_path / "i.npz"
    cases = {
        ("--query", "15"): "--query 15: row out of range; the index has rows 0 to 14",
        ("--query", "-1"): "--query -1: row out of range",
        ("--query", "0", "--k", "15"): "--k 15 is more than the 14 other rows",
        ("--query", tmp_path / "short.npy"): "a query of the wrong size: shape (7,) float32, expected 8 numbers",
        ("--query", tmp_path / "junk.png"): f"{tmp_path / 'junk.png'}: cannot be decoded as an image",
        ("--query", tmp_path / "zero.npy"): "the query is a zero vector, which has no direction",
        ("--query", tmp_path / "missing.png"): "neither a row number of the index nor an existing file",
        ("--text", "a photo of a cat"): "text queries need a CLIP run; this index was built from a simclr run",
    }
    for argv, message in cases.items():
        assert message in one_line_error(capsys, ["search", path, *argv]), argv


def test_the_library_names_a_query_of_the_wrong_width_and_a_bad_k(run, tmp_path):
    index = embed(run, "cifar10:train", tmp_path / "i.npz")
    with pytest.raises(ValueError, match="query of the wrong size: expected 8 numbers"):
        index.search(np.ones((2, 9)))
    with pytest.raises(ValueError, match=r"k = 16 must be a whole number in \[1, 15\]"):
        index.search(np.ones(8), k=16)


def test_text_search_with_a_clip_run(clip_run, tmp_path, capsys):
    index = embed(clip_run, "cifar10:train", tmp_path / "c.npz")
    capsys.readouterr()
    report = search(capsys, tmp_path / "c.npz", "--text", "a photo of a zeppelin", "--k", "15")
    assert report["query"]["unknown_words"] == ["zeppelin"] and len(report["results"]) == 15
    # the same ranking as by hand: image projection of h, normalized, against the text embedding
    _, model = load_run(clip_run)
    text = model.encode_text(model.tokenizer.encode(["a photo of a zeppelin"])).data
    image = index.features @ model.image_projection.weight.data.T  # Linear(bias=False): W_i h
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    sims = (image @ (text / np.linalg.norm(text)).T)[:, 0]
    np.testing.assert_allclose([r["similarity"] for r in report["results"]], np.sort(sims)[::-1], atol=1e-5)
    z = embed(clip_run, "cifar10:train", tmp_path / "z.npz", "--projected")  # already the joint space
    capsys.readouterr()
    same = search(capsys, tmp_path / "z.npz", "--text", "a photo of a zeppelin", "--k", "15")
    np.testing.assert_allclose([r["similarity"] for r in same["results"]],
                               [r["similarity"] for r in report["results"]], atol=1e-5)
    assert z.meta["feature"] == "z"
    for text in ("", "zeppelin blimp"):  # nothing to match: every row would score the same <unk> text
        error = one_line_error(capsys, ["search", tmp_path / "c.npz", "--text", text])
        assert f"--text {text!r}: none of its words is in the CLIP run's vocabulary" in error


# --- the index file -------------------------------------------------------------------------

def test_an_index_from_another_run_or_a_changed_checkpoint_is_refused(run, tmp_path, data, capsys):
    embed(run, "cifar10:train", tmp_path / "i.npz")
    other = train(tmp_path, data, "other", seed=9)
    write_pngs(tmp_path / "pics", np.zeros((1, 3, 32, 32), np.uint8))
    query = ["search", tmp_path / "i.npz", "--query", tmp_path / "pics" / "img00.png"]
    assert "is another run than the index's (config hash" in one_line_error(capsys, query + ["--run", other])
    by_row = ["search", tmp_path / "i.npz", "--query", "0", "--run", other]  # needs no model, still checked
    assert "is another run than the index's (config hash" in one_line_error(capsys, by_row)
    assert "pass --run with its new location" in one_line_error(capsys, query + ["--run", tmp_path / "gone"])
    (run / "last.npz").write_bytes((other / "last.npz").read_bytes())
    assert "last.npz has changed since the index was built" in one_line_error(capsys, query)


def test_corrupt_index_files_are_one_line_naming_the_file(run, tmp_path, capsys):
    good = tmp_path / "i.npz"
    embed(run, "cifar10:train", good)
    raw = good.read_bytes()
    bad = tmp_path / "bad.npz"
    np.savez(tmp_path / "obj.npz", features=np.array([None, 1], dtype=object), labels=np.zeros(2),
             rows=np.array(["a", "b"]), meta=np.zeros(2, np.uint8))
    with np.load(good) as archive:
        parts = dict(archive)
    np.savez(tmp_path / "nometa.npz", **{k: v for k, v in parts.items() if k != "meta"})
    np.savez(tmp_path / "short.npz", **parts | {"labels": parts["labels"][:-1]})
    np.savez(tmp_path / "scaled.npz", **parts | {"features": 2 * parts["features"]})
    cases = {raw[: len(raw) // 2]: "not a readable minicon index",
             b"garbage": "not a readable minicon index (7 bytes): not an .npz archive",
             pickle.dumps({"features": 1}): "not a readable minicon index"}
    for payload, message in cases.items():
        bad.write_bytes(payload)
        assert f"{bad}: {message}" in one_line_error(capsys, ["search", bad, "--query", "0"])
    error = one_line_error(capsys, ["search", tmp_path / "obj.npz", "--query", "0"])
    assert "not a readable minicon index" in error and "minicon never loads" in error
    assert "allow_pickle" not in error  # no advice to load an untrusted pickle
    assert "no meta entry" in one_line_error(capsys, ["search", tmp_path / "nometa.npz", "--query", "0"])
    assert "a damaged minicon index" in one_line_error(capsys, ["dedup", tmp_path / "short.npz", "--auto"])
    assert "not finite unit vectors" in one_line_error(capsys, ["dedup", tmp_path / "scaled.npz", "--auto"])
    assert "no such index file" in one_line_error(capsys, ["dedup", tmp_path / "none.npz", "--auto"])


def test_a_failed_save_leaves_the_previous_index_whole(run, tmp_path, monkeypatch):
    path = tmp_path / "i.npz"
    index = embed(run, "cifar10:train", path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        Index(index.features[:3]).save(path)
    assert path.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# --- dedup ----------------------------------------------------------------------------------

def test_dedup_groups_planted_copies_and_draws_them(run, tmp_path, capsys):
    pictures = np.random.default_rng(2).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    write_pngs(tmp_path / "pics", np.concatenate([pictures, pictures[[1, 1, 4]]]))  # rows 6, 7 copy 1; 8 copies 4
    embed(run, tmp_path / "pics", tmp_path / "f.npz")
    capsys.readouterr()
    assert main(["dedup", str(tmp_path / "f.npz"), "--threshold", "0.9999", "--grid", str(tmp_path / "d.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    groups = [[m["row"] for m in g["members"]] for g in report["largest_first"]]
    assert groups[:2] == [[1, 6, 7], [4, 8]] and report["threshold"] == 0.9999
    assert (tmp_path / "d.png").stat().st_size > 0
    assert main(["dedup", str(tmp_path / "f.npz"), "--auto"]) == 0
    assert json.loads(capsys.readouterr().out)["how"].startswith("--auto: threshold ")


@pytest.mark.parametrize("value", ["1.5", "-2", "nan"])
def test_a_threshold_outside_minus_one_to_one_is_refused(run, tmp_path, capsys, value):
    embed(run, "cifar10:train", tmp_path / "i.npz")
    err = one_line_error(capsys, ["dedup", tmp_path / "i.npz", "--threshold", value])
    assert err == f"minicon: error: --threshold {float(value)}: must be in [-1, 1] (a cosine similarity)"


def test_dedup_needs_a_threshold_or_auto(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["dedup", str(tmp_path / "i.npz")])
    assert stop.value.code == 2 and "one of the arguments --threshold --auto is required" in capsys.readouterr().err


def test_a_folder_index_of_a_clip_run_answers_text(clip_run, tmp_path, capsys):
    write_pngs(tmp_path / "pics", np.random.default_rng(3).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8))
    index = embed(clip_run, tmp_path / "pics", tmp_path / "f.npz")
    assert index.meta["class_names"] == [] and "airplane" in index.meta["run_class_names"]
    capsys.readouterr()
    report = search(capsys, tmp_path / "f.npz", "--text", "a photo of a cat", "--k", "5")
    assert sorted(r["source"] for r in report["results"]) == [f"img{i:02d}.png" for i in range(5)]
    assert report["results"][0]["class"] is None and report["query"]["unknown_words"] == []
