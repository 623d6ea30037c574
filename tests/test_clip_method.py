"""CLIP at toy scale: tokenizer, captions, Embedding, the bag-of-words text encoder, the training
step against its manual forward, prompt ensembling, and zero-shot accuracy on a toy problem."""

import numpy as np
import pytest

import minicon
from minicon import Tensor, nn
from minicon.backend import host_rng
from minicon.evaluate import extract_features, zero_shot_accuracy
from minicon.losses import clip_loss
from minicon.methods import CIFAR10_TEMPLATES, TextEncoder, Tokenizer, build_method, captions_for
from minicon.optim import Adam

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def host(a):
    return minicon.to_host(a.data if isinstance(a, Tensor) else a)


# ---- text -----------------------------------------------------------------------------------


def test_templates_are_clips_eighteen_cifar10_prompts():
    assert len(CIFAR10_TEMPLATES) == 18 and len(set(CIFAR10_TEMPLATES)) == 18
    assert all(t.count("{}") == 1 for t in CIFAR10_TEMPLATES)
    assert CIFAR10_TEMPLATES[0] == "a photo of a {}." and "a blurry photo of a {}." in CIFAR10_TEMPLATES


def test_tokenizer_round_trip_padding_unknown_words_and_truncation():
    texts = ["A photo of a Cat.", "a low-contrast photo of the big ship!", ""]
    tokenizer = Tokenizer.from_texts(texts)
    assert tokenizer.vocabulary[:2] == ["<pad>", "<unk>"]
    assert tokenizer.vocabulary[2:] == sorted(set(tokenizer.vocabulary[2:]))
    ids = tokenizer.encode(texts)
    assert ids.dtype == np.int64 and ids.shape == (3, 8)
    assert tokenizer.decode(ids) == [" ".join(Tokenizer.split(t)) for t in texts]
    assert tokenizer.decode(ids)[1] == "a low contrast photo of the big ship"
    assert (ids[0, 5:] == 0).all() and (ids[2] == 0).all()
    assert tokenizer.decode(tokenizer.encode(["a photo of a zebra"])) == ["a photo of a <unk>"]
    short = Tokenizer(tokenizer.vocabulary[2:], max_length=3)
    assert short.encode(texts).shape == (3, 3) and short.decode(short.encode(texts))[0] == "a photo of"


def test_tokenizer_rejects_bad_vocabularies():
    with pytest.raises(ValueError, match="distinct"):
        Tokenizer(["cat", "cat"])
    with pytest.raises(ValueError, match="lower-case"):
        Tokenizer(["Cat"])
    with pytest.raises(ValueError, match="max_length"):
        Tokenizer(["cat"], max_length=0)


def test_captions_name_the_class_vary_in_template_and_follow_the_seed():
    labels = np.arange(200) % 10
    captions = captions_for(labels, CIFAR10, np.random.default_rng(0))
    assert len(captions) == 200
    assert all(CIFAR10[label] in caption for label, caption in zip(labels, captions))
    templates_used = {c.replace(CIFAR10[label], "{}") for label, c in zip(labels, captions)}
    assert templates_used <= set(CIFAR10_TEMPLATES) and len(templates_used) >= 15
    assert captions_for(labels, CIFAR10, np.random.default_rng(0)) == captions
    assert captions_for(labels, CIFAR10, np.random.default_rng(1)) != captions
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        captions_for(np.array([3, 10]), CIFAR10, np.random.default_rng(0))


def test_embedding_gathers_rows_and_sums_gradients_of_repeated_ids(xp):
    table = nn.Embedding(5, 3).double()
    ids = xp.asarray([[0, 2, 2], [4, 2, 0]])
    out = table(ids)
    np.testing.assert_array_equal(host(out), host(table.weight)[host(ids)])
    g = np.random.default_rng(0).standard_normal((2, 3, 3))
    out.backward(xp.asarray(g))
    expected = np.zeros((5, 3))
    np.add.at(expected, host(ids), g)
    np.testing.assert_allclose(host(table.weight.grad), expected, rtol=1e-12)
    assert minicon.gradcheck(lambda w: w[ids], table.weight)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\), got values in \[-1, 2\]"):
        table(np.array([-1, 2]))
    with pytest.raises(ValueError, match="integers"):
        table(np.array([0.5]))


def test_text_encoder_averages_the_words_and_ignores_padding(xp):
    encoder = TextEncoder(vocab_size=6, width=4)
    ids = np.array([[2, 3, 0, 0], [5, 5, 4, 0], [0, 0, 0, 0]])
    table = host(encoder.embedding.weight)
    out = encoder(xp.asarray(ids))
    expected = [table[[2, 3]].mean(axis=0), table[[5, 5, 4]].mean(axis=0), np.zeros(4)]
    np.testing.assert_allclose(host(out), expected, rtol=1e-6, atol=1e-7)
    padded = encoder(xp.asarray(np.pad(ids, ((0, 0), (0, 3)))))
    np.testing.assert_allclose(host(padded), host(out), rtol=1e-6, atol=1e-7)
    out.sum().backward()
    np.testing.assert_array_equal(host(encoder.embedding.weight.grad)[0], 0)  # padding gets no gradient
    with_mlp = TextEncoder(vocab_size=6, width=4, hidden_dim=7)
    assert with_mlp.out_dim == 7 and with_mlp(xp.asarray(ids)).shape == (3, 7)


# ---- CLIP -----------------------------------------------------------------------------------


def _clip(names=CIFAR10, **kwargs):
    return build_method("clip", nn.ConvNet(widths=(4, 8)), class_names=names, embed_dim=16,
                        text_width=16, text_hidden_dim=16, **kwargs)


def test_clip_step_is_clip_loss_of_the_manual_forward_and_reaches_every_parameter(xp):
    method = _clip()
    images = xp.asarray(np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32))
    labels = np.arange(8)
    minicon.manual_seed(5)
    loss = method.training_step((images, labels))
    assert loss.shape == () and np.isfinite(loss.item())
    loss.backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and np.isfinite(host(p.grad)).all(), name
    minicon.manual_seed(5)
    captions = captions_for(labels, CIFAR10, host_rng())
    image_emb = method.image_projection(method.image_encoder(Tensor(images)))
    text_emb = method.text_projection(method.text_encoder(method.tokenizer.encode(captions)))
    expected = clip_loss(image_emb, text_emb, method.logit_scale)
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(method.logit_scale.item(), np.log(1 / 0.07), rtol=1e-6)


def test_clip_takes_one_view_per_image():
    method = _clip()
    x = np.zeros((4, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="one view per image"):
        method.training_step(((x, x), np.arange(4)))
    with pytest.raises(ValueError, match=r"batch must be \(images, labels\)"):
        method.training_step(x)


def test_zero_shot_classifier_is_the_normalized_mean_of_normalized_prompt_embeddings(xp):
    method = _clip(names=["cat", "dog", "ship"])
    templates = ["a photo of a {}.", "a bad photo of the {}."]
    classifier = host(method.zero_shot_classifier(templates=templates))
    assert classifier.shape == (3, 16)
    with minicon.no_grad():
        for c, name in enumerate(["cat", "dog", "ship"]):
            ids = method.tokenizer.encode([t.format(name) for t in templates])
            text = host(method.encode_text(ids))
            text /= np.linalg.norm(text, axis=1, keepdims=True)
            mean = text.mean(axis=0)
            np.testing.assert_allclose(classifier[c], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)


def _colors(n, seed):
    """Images of four classes told apart by their mean colour (red, green, blue, gray), plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(4, size=n)
    colors = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0]], np.float32)
    images = colors[labels][:, :, None, None] + 0.5 * rng.standard_normal((n, 3, 8, 8))
    return images.astype(np.float32), labels


def test_zero_shot_learns_a_toy_problem_from_captions_alone(xp):
    minicon.manual_seed(0)
    method = _clip(names=["red", "green", "blue", "gray"])
    optimizer = Adam(method.parameters(), lr=1e-2)
    test_images, test_labels = _colors(200, seed=1)
    for step in range(30):
        images, labels = _colors(32, seed=100 + step)
        loss = method.training_step((xp.asarray(images), labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    method.train()
    result = zero_shot_accuracy(method, xp.asarray(test_images), test_labels)
    assert result["top1"] >= 0.9 and result["top5"] == 1.0
    assert all(m.training for m in method.modules())  # zero-shot evaluation restored the modes
    features = extract_features(method, xp.asarray(test_images))
    assert zero_shot_accuracy(method, features, test_labels) == result
    with pytest.raises(ValueError, match="features N×8"):
        zero_shot_accuracy(method, features[:, :5], test_labels)
