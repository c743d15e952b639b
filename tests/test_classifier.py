"""The protected classifier: networks, configuration, training, cache and the run's accuracy."""
from __future__ import annotations

import json
import time

import pytest
import torch

import ppattack
from ppattack.learning import classifier as clf
from ppattack.learning.classifier import (ModelConfig, NibblePlanes, TrainConfig, build_classifier,
                                 configs_from_settings, evaluate, fit, measure_accuracy)
from ppattack.data import assign_roles, load_dataset
from ppattack.errors import DataError, ParameterError, ShapeError
from ppattack.harness import RunConfig, resolve, run
from ppattack.presets import get_preset
from ppattack.schemas import validate

TINY = {"width": 16, "depth": 1}


@pytest.fixture(scope="module")
def samples():
    dataset = load_dataset("samples", 32)
    return dataset, assign_roles(dataset)


@pytest.mark.parametrize("config", [
    ModelConfig("vit", (3, 32, 32), 10, 4, **TINY),
    ModelConfig("vit", (1, 32, 96), 10, 4, **TINY),  # etc-gray's (1, H, 3W) ciphertexts
    ModelConfig("resnet18", (3, 32, 32), 10),
    ModelConfig("resnet18", (1, 32, 96), 10),
    ModelConfig("adaptation", (3, 32, 32), 10, 4),
    ModelConfig("adaptation", (3, 32, 32), 10, 4, per_position=True),
], ids=lambda c: f"{c.architecture}-{'x'.join(map(str, c.input_shape))}{'-per-position' * c.per_position}")
def test_networks_take_uint8_images_of_the_encrypted_shape(config):
    torch.manual_seed(0)
    model = build_classifier(config).eval()
    x = torch.randint(0, 256, (2, *config.input_shape), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 10)
        assert torch.allclose(model(x.float() / 255), logits, atol=1e-5)  # float in [0, 1] too


def test_resnet18_keeps_the_resolution_of_small_images():
    model = build_classifier(ModelConfig("resnet18", (3, 32, 32), 10))
    assert model.net.conv1.stride == (1, 1) and isinstance(model.net.maxpool, torch.nn.Identity)


def test_nibble_planes_are_what_le_permutes():
    x = torch.tensor([0, 15, 16, 171, 255], dtype=torch.uint8).view(1, 1, 1, 5)
    planes = (NibblePlanes()(x.float() / 255) + 1) * 7.5
    assert planes.round().flatten().tolist() == [0, 15, 0, 11, 15, 0, 0, 1, 10, 15]


def test_bad_configuration_is_a_one_line_error():
    with pytest.raises(ParameterError, match="classifier must be one of vit, resnet18, adaptation"):
        ModelConfig("mlp")
    with pytest.raises(ShapeError, match="patch/block size 5"):
        ModelConfig("vit", (3, 32, 32), 10, 5)
    with pytest.raises(ParameterError, match="classifier_optimizer"):
        TrainConfig(optimizer="lion")
    settings = {**get_preset("quick"), "classifier_epochs": "many"}
    with pytest.raises(ParameterError, match="classifier_epochs must be an integer"):
        configs_from_settings(settings, ppattack.create_cipher("plain"), (3, 32, 32), 9)


def test_preset_values_are_overridable_and_follow_the_cipher():
    config = RunConfig(cipher="etc-gray", attack="fr", params={"classifier": "resnet18", "classifier_epochs": 2})
    settings = resolve(config).settings
    cipher = ppattack.create_cipher("etc-gray", block_size=4)
    model, train = configs_from_settings(settings, cipher, (3, 32, 32), 9)
    assert (model.architecture, model.input_shape, train.epochs) == ("resnet18", (1, 32, 96), 2)
    paper = get_preset("paper")
    model, train = configs_from_settings(paper, ppattack.create_cipher("proposed", block_size=16), (3, 224, 224), 10)
    assert (model.width, model.depth, model.heads, model.patch_size, model.pretrained) == (768, 12, 12, 16, True)
    assert (train.optimizer, train.lr, train.weight_decay, train.batch_size) == ("sgd", 0.3, 5e-4, 512)
    _, plain_train = configs_from_settings(paper, ppattack.create_cipher("plain"), (3, 224, 224), 10)
    assert plain_train.lr == 0.03
    model, _ = configs_from_settings({**get_preset("quick"), "classifier": "adaptation"},
                                     ppattack.create_cipher("ele", block_size=4), (3, 32, 32), 9)
    assert model.per_position


BUILT_IN = ("plain", "proposed", "le", "ele", "pe", "etc", "etc-gray", "block-shuffle", "block-np", "block-ffx")


def test_adaptation_and_learning_rate_follow_cipher_attributes_not_names():
    """Per-position adaptation comes from ``per_position_keys``, the plain learning rate from
    having no key material: built-ins keep their choices and plugins get the same."""
    settings = {**get_preset("quick"), "classifier": "adaptation", "classifier_lr": 0.1,
                "classifier_lr_encrypted": 0.2}
    for name in BUILT_IN:
        model, train = configs_from_settings(settings, ppattack.create_cipher(name), (3, 32, 32), 9)
        assert (model.per_position, train.lr) == (name == "ele", 0.1 if name == "plain" else 0.2), name

    class PerBlock(type(ppattack.create_cipher("block-shuffle"))):
        name = "test-per-block"
        per_position_keys = True

    class Invert(ppattack.Cipher):
        """Negative image: no key at all."""
        name = "test-invert"

        def key_fields(self, shape):
            return {}

    model, train = configs_from_settings(settings, PerBlock(), (3, 32, 32), 9)
    assert (model.per_position, train.lr) == (True, 0.2)
    model, train = configs_from_settings(settings, Invert(), (3, 32, 32), 9)
    assert (model.per_position, train.lr) == (False, 0.1)


def test_paper_preset_offline_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, _ = configs_from_settings(get_preset("paper"), ppattack.create_cipher("proposed", block_size=16),
                                     (3, 224, 224), 10)
    started = time.perf_counter()
    with pytest.raises(DataError) as error:
        build_classifier(model)
    message = str(error.value)
    assert "ImageNet-21k weights for vit_base_patch16_224 could not be downloaded" in message
    assert "--param classifier_pretrained=false" in message and "\n" not in message
    assert time.perf_counter() - started < 30


def fit_tiny(cipher_name, roles, *, seed=0, use_cache=False, epochs=1, **cipher_params):
    cipher = ppattack.create_cipher(cipher_name, **cipher_params)
    key = cipher.generate_key((3, 32, 32), seed=1)
    model = ModelConfig("vit", cipher.encrypted_shape((3, 32, 32)), 9, 4, **TINY)
    train = TrainConfig(epochs=epochs, batch_size=32)
    return cipher, key, fit(cipher, key, roles.victim_train[:96], model, train, seed=seed, use_cache=use_cache)


def test_training_is_deterministic_for_a_seed(samples):
    _, roles = samples
    first = fit_tiny("proposed", roles, block_size=4)[2].model.state_dict()
    again = fit_tiny("proposed", roles, block_size=4)[2].model.state_dict()
    other = fit_tiny("proposed", roles, block_size=4, seed=1)[2].model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_second_fit_is_a_cache_hit_and_the_key_stays_out_of_the_identity(samples, monkeypatch):
    _, roles = samples
    identities = []
    real_cached = clf.cached
    monkeypatch.setattr(clf, "cached", lambda kind, identity, build, enabled=True:
                        identities.append(identity) or real_cached(kind, identity, build, enabled))
    cipher, key, first = fit_tiny("block-shuffle", roles, use_cache=True, block_size=4)
    _, _, second = fit_tiny("block-shuffle", roles, use_cache=True, block_size=4)
    assert (first.cached, second.cached) == (False, True)
    assert second.train_seconds == first.train_seconds
    state = first.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in second.model.state_dict().items())
    text = json.dumps(identities[0], default=str)
    assert identities[0]["key_sha256"] == clf.key_fingerprint(key)
    assert json.dumps(key.material["perm"].tolist()) not in text and "material" not in text
    _, _, other_key = fit_tiny("block-shuffle", roles, use_cache=True, block_size=8)
    assert not other_key.cached


@pytest.mark.parametrize("augment", [True, False])
def test_the_victim_augments_plain_images_then_encrypts_them(samples, augment):
    _, roles = samples
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=1)
    images = roles.victim_train[:64]
    seen = []
    real_encrypt = cipher.encrypt
    cipher.encrypt = lambda x, k, **kw: seen.append(x) or real_encrypt(x, k, **kw)
    fit(cipher, key, images, ModelConfig("vit", (3, 32, 32), 9, 4, **TINY),
        TrainConfig(epochs=1, batch_size=32, augment=augment), use_cache=False)
    batch = torch.cat(seen)
    unchanged = (batch[:, None] == images.tensor()[None]).flatten(2).all(dim=2).any(dim=1)
    assert len(batch) == 64 and bool(unchanged.all()) is not augment


def test_etc_gray_trains_on_its_grayscale_ciphertexts(samples):
    dataset, roles = samples
    cipher, key, trained = fit_tiny("etc-gray", roles, block_size=4)
    assert trained.model.config.input_shape == (1, 32, 96)
    accuracy = evaluate(trained.model, cipher, key, dataset.test[:40])
    assert 0 <= accuracy <= 1


def test_ciphertexts_that_are_not_8_bit_get_a_reason(samples):
    pytest.importorskip("ff3")
    dataset, roles = samples
    cipher = ppattack.create_cipher("block-ffx", block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=0)
    block = measure_accuracy(get_preset("quick"), cipher, key, roles.victim_train, dataset.test, 9)
    assert block["protected_model_on_encrypted"] is None and "int32 ciphertexts" in block["reason"]


def test_a_quick_run_reports_accuracy_beside_the_attack():
    document = run(RunConfig(cipher="proposed", attack="fr")).document
    accuracy = document["accuracy"]
    assert accuracy["test_images"] == 144 and accuracy["train_images"] == 216  # samples: all test images
    assert accuracy["classifier"]["architecture"] == "vit" and accuracy["classifier"]["patch_size"] == 4
    # nine classes (chance 0.11): both models learn, and proposed costs the ViT little
    assert accuracy["plain_model_on_plain"] > 0.4
    assert accuracy["protected_model_on_encrypted"] > 0.4
    assert set(accuracy["train_seconds"]) == set(accuracy["cache_hit"]) == {"plain", "protected"}
    assert validate(json.loads(json.dumps(document)), "result") == []
    skipped = run(RunConfig(cipher="proposed", attack="fr", accuracy=False)).document["accuracy"]
    assert skipped == {"plain_model_on_plain": None, "protected_model_on_encrypted": None,
                       "reason": "skipped (--no-accuracy)"}


def test_a_batch_out_of_gpu_memory_is_redone_in_micro_batches(samples, monkeypatch, caplog):
    """Simulated: a forward pass over more than ``fits`` images raises CUDA's out-of-memory
    error. Training goes on in halved micro-batches with accumulated gradients, which gives the
    weights of one pass over the whole batch; when not even one image fits, a clear error."""
    _, roles = samples
    real_build = clf.build_classifier

    def build_limited(fits):
        def build(config):
            model = real_build(config)

            def refuse(module, inputs):
                if len(inputs[0]) > fits:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            model.register_forward_pre_hook(refuse)
            return model
        return build

    whole = fit_tiny("proposed", roles, block_size=4)[2].model.state_dict()
    monkeypatch.setattr(clf, "build_classifier", build_limited(fits=8))
    split = fit_tiny("proposed", roles, block_size=4)[2].model.state_dict()
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], rtol=1e-4, atol=1e-5)
    assert "micro-batches of 8 images" in caplog.text
    monkeypatch.setattr(clf, "build_classifier", build_limited(fits=0))
    with pytest.raises(ParameterError, match="does not fit in GPU memory even one image at a time"):
        fit_tiny("proposed", roles, block_size=4)


def test_micro_batches_accumulate_the_whole_batch_gradient():
    from ppattack.learning.training import grad_scaler

    model = build_classifier(ModelConfig("vit", (3, 32, 32), 9, 4, **TINY))
    x = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(10) % 9
    grads, losses = {}, {}
    for micro in (10, 3):  # one pass, then micro-batches of 3, 3, 3 and 1 images
        model.zero_grad(set_to_none=True)
        loss, kept = clf._backward(model, x, y, micro, grad_scaler(torch.device("cpu")), False)
        assert kept == micro
        grads[micro], losses[micro] = [p.grad.clone() for p in model.parameters()], float(loss)
    for one, split in zip(grads[10], grads[3]):
        torch.testing.assert_close(split, one, rtol=1e-4, atol=1e-6)
    assert losses[3] == pytest.approx(losses[10], rel=1e-5)
