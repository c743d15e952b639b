"""keyrec and its building blocks: seriation, compatibility, placement, key scores."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ppattack
from ppattack.solvers.edge_compatibility import dihedral_dissimilarity, dissimilarity
from ppattack.solvers.keyscore import score_recovery
from ppattack.solvers.pieces import INVERSE, OFFSETS, PRODUCT, ColourGroup, assemble, split, square_symmetries, turn
from ppattack.solvers.placement import place
from ppattack.solvers.seriation import grid_template, match_positions, objective, refine_swaps
from ppattack.threat import ThreatView
from smooth import smooth_images

from ppattack.harness import key_recovery_scores
from ppattack.solvers.pieces import turn as turn_picture


def test_dihedral_tables_match_torch():
    grid = torch.arange(25).view(5, 5)
    for a in range(8):
        assert torch.equal(turn(turn(grid, a), INVERSE[a]), grid)
        for b in range(8):
            assert torch.equal(turn(turn(grid, b), a), turn(grid, PRODUCT[a, b]))
    # OFFSETS[t] moves the offset between two pixels as turn(t) moves the pixels
    where = {int(v): divmod(i, 5) for i, v in enumerate(turn(grid, 5).flatten())}
    delta_old = np.array(divmod(7, 5)) - np.array(divmod(0, 5))
    assert (OFFSETS[5] @ delta_old == np.array(where[7]) - np.array(where[0])).all()


def test_colour_group_composes():
    group = ColourGroup(3)
    x = torch.randint(0, 256, (2, 3, 4, 4))
    assert group.size == 12
    for a in range(12):
        for b in range(12):
            assert torch.equal(group.apply(group.apply(x, b), a), group.apply(x, group.product[a, b]))


@pytest.mark.parametrize("side", [3, 8])
def test_seriation_recovers_a_grid_up_to_its_symmetries(side):
    template = grid_template(side, side)
    perm = np.random.default_rng(side).permutation(side * side)
    found = match_positions(template, template[np.ix_(perm, perm)])
    assert any((s[found] == perm).all() for s in square_symmetries(side))


def _swaps_by_brute_force(template, observed, perm):
    """Best-improvement swaps, every swap's objective computed afresh (the reference)."""
    perm = perm.copy()
    while True:
        value = objective(template, observed, perm)
        best, pair = 0.0, None
        for x in range(len(perm)):
            for y in range(x + 1, len(perm)):
                moved = perm.copy()
                moved[[x, y]] = moved[[y, x]]
                gain = objective(template, observed, moved) - value
                if gain > best + 1e-9:
                    best, pair = gain, (x, y)
        if pair is None:
            return perm
        perm[list(pair)] = perm[list(pair[::-1])]


@pytest.mark.parametrize("seed", range(6))
def test_swap_polish_keeps_its_gains_right(seed):
    # The gains are updated swap by swap; a wrong update picks other swaps or stops early.
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 14))
    template, observed = rng.normal(size=(2, size, size))
    template, observed = template + template.T, observed + observed.T  # diagonals kept
    start = rng.permutation(size)
    found, value = refine_swaps(template, observed, start)
    assert (found == _swaps_by_brute_force(template, observed, start)).all()
    assert value == pytest.approx(objective(template, observed, found))


def test_lean_seriation_recovers_a_large_grid_up_to_its_symmetries():
    template = grid_template(16, 16, 2.0)
    perm = np.random.default_rng(3).permutation(256)
    # A square grid's two leading eigenvectors come in any rotation: the orientation search
    # must be fine enough (with 24 orientations instead of 72 this finds 16 % of the grid).
    found = match_positions(template, template[np.ix_(perm, perm)], lean=True)
    assert any((s[found] == perm).all() for s in square_symmetries(16))


def test_compatibility_and_placement_solve_a_smooth_puzzle():
    image = smooth_images(1, 24, seed=1)
    order = torch.from_numpy(np.random.default_rng(0).permutation(9))
    pieces = split(image, 8)[0][order]
    table = dissimilarity(pieces).numpy()
    assert table.shape == (2, 9, 9) and np.isinf(np.diagonal(table, axis1=1, axis2=2)).all()
    solved = place(table, 3, 3)
    assert (solved.cells == order.numpy()).all() and solved.largest_cluster == 9


def test_dihedral_table_equals_the_brute_force_table():
    pieces = torch.rand(3, 3, 4, 4) * 255
    group = ColourGroup(3)
    table, relative = dihedral_dissimilarity(pieces, colour=group)
    turned = torch.stack([turn(pieces.double(), t) for t in range(8)], 1).flatten(0, 1)
    brute = torch.stack([dissimilarity(turned, others=group.apply(turned, e)) for e in range(12)]).min(0)
    other = (np.arange(24)[:, None] // 8) != (np.arange(24)[None, :] // 8)
    assert np.allclose(table[:, other], brute.values.numpy()[:, other])
    assert (relative[:, other] == brute.indices.numpy()[:, other]).all()


def test_keyscore_scores_parts_and_placements():
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 16, 16), seed=0)
    truth = {k: np.asarray(v) for k, v in key.material.items()}
    assert score_recovery(cipher, key, truth)["complete"] == 1.0
    wrong = dict(truth, block_perm=truth["block_perm"][::-1].copy())
    scores = score_recovery(cipher, key, wrong)
    assert scores["pixel_perm"] == 1.0 and scores["block_perm"] < 1 and scores["complete"] == 0.0
    assert 0 <= scores["neighbour"] <= 1 and scores["direct"] == scores["block_perm"]
    assert score_recovery(cipher, key, [truth, wrong])["block_perm"] == pytest.approx(
        (1 + scores["block_perm"]) / 2)


def test_keyscore_neighbour_is_blind_to_a_global_turn():
    """etc solved up to a turn and inversion of the whole picture: neighbours all right."""
    from ppattack.solvers.component_map import from_oracle, key_material

    cipher = ppattack.create_cipher("etc", block_size=4)
    shape = (3, 16, 16)
    key = cipher.generate_key(shape, seed=0)
    r, c = np.divmod(np.arange(16), 4)
    moved = OFFSETS[1] @ (np.stack([r, c]) - 1.5) + 1.5
    dest = (np.rint(moved[0]) * 4 + np.rint(moved[1])).astype(int)
    block_perm = np.empty(16, int)
    block_perm[dest] = np.arange(16)
    turn_all = ppattack.Key("etc", cipher.params, shape, {"block_perm": block_perm, "transform": np.ones(16, int),
                                                          "np": np.ones(16, int), "color": np.zeros(16, int)})
    found = from_oracle(lambda z: cipher.encrypt(cipher.decrypt(z, turn_all), key), shape)
    scores = score_recovery(cipher, key, key_material(cipher, shape, found))
    assert scores["direct"] == 0.0 and scores["neighbour"] == 1.0 and scores["direct_modulo_global"] == 1.0


PLUGINS = Path(__file__).parent / "plugins"


def plugin_cipher(name: str):
    """A test plugin cipher made from its class, with no registration: nothing names it."""
    sys.path.insert(0, str(PLUGINS / "ppattack-shared-maps"))
    sys.path.insert(0, str(PLUGINS / "ppattack-row-shuffle"))
    from ppattack_row_shuffle import RowShuffle
    from ppattack_shared_maps import PixelScatter, TileMix, TileTurn

    return {"tile-mix": TileMix(), "tile-mix-no-flips": TileMix(invert=0), "tile-turn": TileTurn(),
            "pixel-scatter": PixelScatter(), "row-shuffle": RowShuffle()}[name]


def keyrec_view(cipher, count: int, size: int = 32):
    key = cipher.generate_key((3, size, size), seed=5)
    plain = smooth_images(count, size, seed=11, cells=12)  # some texture: a block's 48 entries differ
    public = smooth_images(200, size, seed=12, cells=12)
    view = ThreatView("coa+public", cipher, (3, size, size), cipher.encrypt(plain, key), public)
    return key, plain, view


@pytest.mark.parametrize("cipher_name", ["proposed", "block-shuffle", "block-np", "le"])
def test_keyrec_recovers_shared_keys_of_smooth_images(cipher_name):
    """Byte maps with and without moves and inversions, and le's nibble map (Kerckhoffs: the
    attack learns each structure from keys of its own, never from the name)."""
    cipher = ppattack.create_cipher(cipher_name, block_size=4)
    key, plain, view = keyrec_view(cipher, 40)
    result = ppattack.create_attack("keyrec")(view)
    scores = key_recovery_scores(cipher, key, result.recovered_key, result.recovered_map)
    assert scores["complete"] == 1.0 and scores["decrypts_exactly"] == 1.0, scores
    assert torch.equal(result.images, plain)


@pytest.mark.parametrize("name", ["tile-mix", "tile-mix-no-flips"])
def test_keyrec_restores_an_unnamed_plugin_up_to_the_turn_of_the_picture(name):
    """A plugin (block scrambling + a shared map of the mixed-channel tile vector, with and
    without inversions): exact up to turning the whole picture, which a shared in-tile turn
    makes a second valid key; on isotropic synthetic fields no prior can choose."""
    cipher = plugin_cipher(name)
    key, plain, view = keyrec_view(cipher, 40)
    result = ppattack.create_attack("keyrec", mirror_steps=0)(view)  # isotropic: nothing to learn
    assert result.facts["structure"] == {"bits": 8, "block": 4, "moves": True, "shared": True,
                                         "pixels_whole": False}
    assert any(torch.equal(result.images, turn_picture(plain, t)) for t in range(8))


def sawtooth_fields(count: int, seed: int) -> torch.Tensor:
    """Smooth fields, brighter at the top (a cue the hand-made prior sees: up is settled), under
    a sawtooth that rises slowly and drops at once, left to right, with a random period and
    phase per picture: a left-right cue that no mean, spread, skew or left-minus-right
    statistic sees, but a mirror image reverses."""
    generator = torch.Generator().manual_seed(seed)
    fields = smooth_images(count, 32, seed=seed, cells=12).float()
    period = torch.randint(5, 9, (count, 1), generator=generator).float()
    phase = torch.rand(count, 1, generator=generator) * period
    position = (torch.arange(32).float()[None] + phase) % period / period  # 0 -> 1, then drops
    tooth = 40 * (position - 0.5)
    sky = torch.linspace(25, -25, 32).view(1, 1, 32, 1)
    return (fields + tooth[:, None, None, :] + sky).clamp(0, 255).round().to(torch.uint8)


def test_keyrec_chooses_the_mirror_by_the_learned_vote():
    """tile-mix leaves the picture's turn open; the pictures carry a left-right cue. The mirror
    score learned on the public pictures votes over every restored picture, and keyrec keeps
    the side it votes for: the pictures come back as they were, the vote's z-score reported."""
    cipher = plugin_cipher("tile-mix")
    key = cipher.generate_key((3, 32, 32), seed=5)
    plain, public = sawtooth_fields(200, seed=11), sawtooth_fields(400, seed=12)
    view = ThreatView("coa+public", cipher, (3, 32, 32), cipher.encrypt(plain, key), public)
    result = ppattack.create_attack("keyrec", mirror_steps=30)(view)
    assert torch.equal(result.images, plain)
    assert result.facts["mirror_vote"]["pictures"] == 200 and result.facts["mirror_vote"]["z"] > 3
    assert "mirror_vote" not in ppattack.create_attack("keyrec", mirror_steps=0)(view).facts


def test_keyrec_turns_pieces_that_never_move():
    """A plugin that turns, mirrors and inverts every tile by a key of its own but scrambles
    nothing: the tiles' maps from their statistics, their turns in place by the edges."""
    cipher = plugin_cipher("tile-turn")
    key, plain, view = keyrec_view(cipher, 40)
    result = ppattack.create_attack("keyrec")(view)
    assert result.facts["structure"]["moves"] is False and result.facts["structure"]["shared"] is False
    scores = key_recovery_scores(cipher, key, result.recovered_key, result.recovered_map)
    assert scores["decrypts_exactly"] == 1.0, scores
    assert torch.equal(result.images, plain)


def test_keyrec_on_photographs_restores_per_position_keys():
    """etc (a turn, inversion and channel order per block, then scrambling) on the embedded
    photographs: statistics per block position, then placement with turns."""
    from ppattack.harness import RunConfig, run

    document = run(RunConfig(cipher="etc", attack="keyrec", accuracy=False, limit=200,
                             params={"mirror_steps": 0})).document  # the prior alone (time)
    assert document["attack"]["facts"]["structure"]["shared"] is False
    assert document["metrics"]["ssim"]["median"] >= 0.8  # measured 0.86


@pytest.mark.parametrize("name,reason", [("pe", "key per image"), ("block-ffx", "components")])
def test_keyrec_reports_ciphers_outside_its_class(name, reason):
    if name not in ppattack.list_ciphers():
        pytest.skip(f"{name} is not installed")
    cipher = ppattack.create_cipher(name)
    key = cipher.generate_key((3, 32, 32), seed=0)
    images = smooth_images(4, 32)
    view = ThreatView("coa+public", cipher, (3, 32, 32), cipher.encrypt(images, key), images)
    with pytest.raises(ppattack.ParameterError, match=reason):
        ppattack.create_attack("keyrec")(view)


def test_keyrec_refuses_other_threat_models():
    with pytest.raises(ppattack.ParameterError, match="coa\\+public"):
        ppattack.create_attack("keyrec", threat="coa")


def test_structure_is_learned_from_own_keys():
    from ppattack.solvers.structure import probe

    le = probe(ppattack.create_cipher("le", block_size=4), (3, 16, 16))
    assert (le.bits, le.masks, le.block, le.moves, le.shared, le.planes_fixed) == (4, (0, 15), 4, False, True, False)
    proposed = probe(ppattack.create_cipher("proposed", block_size=4), (3, 16, 16))
    assert proposed.moves and proposed.shared and proposed.pixels_whole
    # proposed keeps every pixel in its channel and its quarter of the block: 3 x 4 classes
    assert len(set(proposed.classes.tolist())) == 12
    assert not proposed.allows(np.arange(48).reshape(3, 4, 4)[:, :, ::-1].reshape(-1))  # a mirror
    scatter = probe(plugin_cipher("pixel-scatter"), (3, 8, 8))  # declares no block: pixels
    assert (scatter.block, scatter.moves, scatter.shared) == (1, True, False)


def test_harness_scores_and_withholds_the_recovered_key():
    from ppattack.harness import RunConfig, run

    document = run(RunConfig(cipher="proposed", attack="keyrec", accuracy=False, limit=48)).document
    assert document["attack"]["key_recovery"]["complete"] == 1.0
    assert "recovered_key" not in document["attack"]["facts"]
    assert "recovered_map" not in document["attack"]["facts"]
    assert document["metrics"]["ssim"]["mean"] == pytest.approx(1.0)


def test_pieces_round_trip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    assert torch.equal(assemble(split(x, 4), 2, 2), x)


def test_pieces_take_inversion_and_channel_order_from_the_rest_of_the_picture():
    """ele (a map per block position): pieces whose own statistics left them inverted or with
    exchanged channels are put right by agreeing with the other pieces over the ciphertexts."""
    from ppattack.attacks.keyrec import _Solver
    from ppattack.data import load_dataset
    from ppattack.solvers.component_map import from_oracle
    from ppattack.solvers.piece_maps import PieceMap, symmetries
    from ppattack.solvers.structure import local_maps, probe

    images = load_dataset("samples", 32).train.tensor()
    cipher, shape = ppattack.create_cipher("ele", block_size=4), (3, 32, 32)
    key = cipher.generate_key(shape, seed=3)
    structure = probe(cipher, shape)
    true_map = from_oracle(lambda z: cipher.encrypt_keyed(z, key), shape, structure.bits)
    _, sources, masks = local_maps(true_map, shape, 4)
    truth = [PieceMap(src, mask.astype(np.uint8)) for src, mask in zip(sources, masks)]
    solver = _Solver(ppattack.create_attack("keyrec"), structure, shape, cipher.encrypt(images, key),
                     images[:100], {}, {}, mirror_public=images[:100])
    exchanged = symmetries(3, 4, structure.planes, turns=False, colours=True)[3]
    wrong = list(truth)
    for i in (3, 7):
        wrong[i] = PieceMap(truth[i].src, truth[i].mask ^ 15)
    for i in (5, 11):
        wrong[i] = truth[i].then(exchanged)
    fixed = solver._agree_with_the_picture(wrong)
    assert all((f.src == t.src).all() and (f.mask == t.mask).all() for f, t in zip(fixed, truth))
