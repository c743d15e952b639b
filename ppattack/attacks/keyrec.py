"""keyrec: ciphertext-only recovery of a key that every image shares, for any cipher of the class
(docs/attacks.md, "keyrec" and "keyrec for any shared-key cipher").

A cipher that encrypts every image with ONE key whose keyed part moves bits, nibbles or bytes
and inverts some of them (proposed, block-shuffle, block-np, le, ele, etc, etc-gray after its
keyless colour step, and any plugin of the kind) leaks the key through the statistics of many
ciphertexts. The attacker (threat model ``coa+public``) knows the algorithm but not the key;
it never looks at the cipher's name:

1. structure (:func:`ppattack.solvers.structure.probe`): it encrypts chosen images under keys of its
   own and learns the unit size, the masks, the pieces the key keeps whole (the cipher's
   declared ``block_size`` when it has one), whether pieces move, and whether one in-piece map
   serves every piece;
2. in-piece maps (:func:`ppattack.solvers.piece_maps.PieceMapSolver`): from the units of all
   ciphertext pieces (one shared map) or of each piece position over the ciphertexts (a map per
   position), against a template from the public images (planes, inversions, quadratic
   assignment, lower planes by prediction);
3. what statistics inside a piece cannot tell (turns, mirrors, channel orders): the edges
   between pieces (:mod:`ppattack.solvers.edge_compatibility`) and the public images' colour statistics decide;
4. placement, when pieces move: edge dissimilarity of every ordered pair of pieces summed over
   the ciphertexts, then tree-based placement (:mod:`ppattack.solvers.placement`; pieces in 8 turns when
   every position has its own map); single pixels are placed by quadratic assignment of their
   correlations (Le Roux et al., "Learning the 2-D topology of images", NIPS 2007), or, when
   every key moves pixels as whole rows or columns (``structure.lines``), the lines are
   ordered by the correlations of whole lines (:func:`ppattack.solvers.seriation.match_lines`),
   quadratic in the lines rather than the pixels, their reversal settled as below; the quarter
   turn of the whole picture comes from a linear discriminant of the four turns fitted on the
   public images and voted over every restored picture (:mod:`ppattack.solvers.uprightness`;
   ``turn_vote`` in the facts), its mirror from a mirror score learned on them and summed over
   every restored picture (:mod:`ppattack.solvers.chirality`; ``mirror_steps`` its training
   steps, 0 for no vote: the quick and paper budgets, where the mirror stays as the turn vote
   leaves it and the results' SSIM up to a left-right mirror shows it).

The recovered map decrypts the ciphertexts by itself (:class:`ppattack.solvers.component_map.ComponentMap`);
it goes to the harness as ``AttackResult.recovered_map`` (scored by decryption, never written), with
the cipher's key material in ``AttackResult.recovered_key`` when the cipher derives it
(:meth:`ppattack.cipher.Cipher.key_from_map`). Ciphers outside the class (a key per image,
ciphertexts that are not 8-bit images, masks that are not whole-unit inversions) are reported
as such with the reason.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from ppattack.attack import Attack, AttackResult
from ppattack.solvers.chirality import fit_mirror_score, mirror_vote
from ppattack.solvers.uprightness import fit_turn_prior, turn_vote
from ppattack.solvers.edge_compatibility import block_edge_cost, dihedral_dissimilarity, summed_dissimilarity
from ppattack.solvers.component_map import ComponentMap
from ppattack.errors import ParameterError, ShapeError
from ppattack.keys import Shape
from ppattack.solvers.pieces import DIHEDRAL, split, turn
from ppattack.solvers.piece_maps import PieceMap, PieceMapSolver, symmetries
from ppattack.solvers.placement import place
from ppattack.solvers.seriation import correlation, match_lines, match_positions
from ppattack.solvers.structure import Structure, assemble_units, compose_map, piece_units, probe
from ppattack.threat import ThreatView

log = logging.getLogger(__name__)


#: Ciphertexts whose colour statistics judge a candidate map (enough for a stable histogram).
COLOUR_SAMPLE = 256
#: Units of a piece's top plane above which the maps of a map per position are searched lean
#: (:func:`ppattack.solvers.seriation.match_positions`): 768 at 224x224/16 for a nibble cipher,
#: where the full search costs minutes for each of the 196 positions; 48 at 32x32/4.
LEAN_UNITS = 256
#: Relative margin within which two classes of in-piece maps restore equally coherent pieces
#: (the classes that differ by inverting the whole piece tie exactly, up to rounding).
COHERENCE_TIE = 1e-6


class KeyRec(Attack):
    """Shared-key recovery from many ciphertexts and public images, for any cipher of the class."""

    name = "keyrec"
    paper = ("docs/attacks.md 'keyrec'; Le Roux et al.: learning the 2-D topology of images (NIPS 2007); "
             "placement after Gallagher (CVPR 2012); the jigsaw attacks of Chuman and Kiya "
             "(2022-2023) on the block-wise ViT scheme")
    threat_models = ("coa+public",)
    # The mirror vote (mirror_steps > 0) costs far more than the rest of a quick recovery and
    # decides little at this scale (width 8, 100 steps on 1,000 CIFAR pictures: z 0.06), so only
    # the cifar budget spends it; the results' SSIM up to a left-right mirror shows a mirrored
    # restoration for what it is.
    # what each budget changes; the defaults are the paper budget's (the constructor's signature)
    budgets = {"quick": {"max_ciphertexts": 1000, "max_public": 1000, "mirror_public": 1000},
               "cifar": {"max_ciphertexts": 5000, "max_public": 2000, "mirror_public": 10000, "mirror_steps": 600},
               "paper": {}}
    PLACEMENT_IMAGES = 256  # ciphertexts whose edges are summed to place pieces with turns

    def __init__(self, *, max_ciphertexts: int = 100, max_public: int = 200,
                 mirror_public: int = 200, mirror_steps: int = 0, mirror_width: int = 32,
                 compat: str = "mgc", reg: float = 1.0, restarts: int = 8, **common):
        super().__init__(**common)
        self.store_params(locals())
        if min(self.max_ciphertexts, self.max_public, self.mirror_public, self.mirror_width) < 1 \
                or self.mirror_steps < 0:
            raise ParameterError("max_ciphertexts, max_public, mirror_public and mirror_width must be at least 1, "
                                 "mirror_steps at least 0")
        if not (math.isfinite(self.reg) and self.reg >= 0) or self.restarts < 1:
            raise ParameterError(f"keyrec reg must be finite and >= 0 (got {self.reg}), restarts at least 1 "
                                 f"(got {self.restarts})")

    def public_images_wanted(self) -> int:
        return max(self.max_public, self.mirror_public)

    def reconstruct(self, view: ThreatView) -> AttackResult:
        cipher, shape = view.cipher, tuple(view.plain_shape)
        if view.public_images is None or not len(view.public_images):
            raise ParameterError("keyrec needs public images (threat model coa+public)")
        cipher.check_shape(shape)
        start = time.perf_counter()
        structure = probe(cipher, shape)
        keyed = tuple(cipher.keyed_shape(shape))
        if tuple(view.ciphertexts.shape[1:]) != keyed or view.ciphertexts.dtype != torch.uint8:
            raise ShapeError(f"keyrec needs 8-bit ciphertexts of shape {keyed}")
        cts = view.ciphertexts[:self.max_ciphertexts].cpu()
        every_public = cipher.keyless_step(view.public_images[:max(self.max_public, self.mirror_public)].cpu())
        public = every_public[:self.max_public]
        facts: dict[str, Any] = {"ciphertexts_used": len(cts), "public_used": len(public),
                                 "structure": {k: getattr(structure, k) for k in
                                               ("bits", "block", "moves", "shared", "pixels_whole")}}
        seconds = {"structure": time.perf_counter() - start}
        found = _Solver(self, structure, keyed, cts, public, facts, seconds,
                        mirror_public=every_public[:self.mirror_public]).solve()
        facts["seconds"] = seconds
        log.info("keyrec: %s map from %d ciphertexts and %d public images", cipher.name, len(cts), len(public))
        material = cipher.key_from_map(shape, found)
        recovered_key = None if material is None else {k: np.asarray(v).tolist() for k, v in material.items()}
        images = cipher.undo_keyless_step(found.decrypt(view.ciphertexts.cpu(), keyed))
        return AttackResult(images.to(view.device), facts, recovered_key=recovered_key, recovered_map=found)


class _Solver:
    """One recovery: the structure, the data in the keyed domain, and the steps of the module
    docstring. ``cts``, ``public`` and ``mirror_public`` (which train the mirror score) are
    uint8 images of the keyed shape."""

    def __init__(self, attack: KeyRec, structure: Structure, keyed: Shape, cts: torch.Tensor,
                 public: torch.Tensor, facts: dict[str, Any], seconds: dict[str, float], *,
                 mirror_public: torch.Tensor):
        self.attack, self.structure, self.keyed = attack, structure, keyed
        self.cts, self.public, self.facts, self.seconds = cts, public, facts, seconds
        self.mirror_public = mirror_public
        channels, height, width = keyed
        self.channels = channels
        self.block = structure.block
        self.rows, self.cols = height // self.block, width // self.block
        self.pieces = self.rows * self.cols
        self.x = piece_units(cts, self.block, structure.bits)  # (N, P, L)
        self.templates = piece_units(public, self.block, structure.bits).transpose(0, 1)  # (P, p, L)
        self.length = self.x.shape[-1]
        self.open_turn = False
        self.public_stats = _channel_stats(public)

    # -- the steps -----------------------------------------------------------------------------
    def solve(self) -> ComponentMap:
        s = self.structure
        start = time.perf_counter()
        if s.shared:
            solver = PieceMapSolver(self.templates.flatten(0, 1)[None], s, self.channels)
            shared = solver.solve(self.x.flatten(0, 1), restarts=self.attack.restarts, seed=self.attack.seed)
            maps = [shared] * self.pieces
        elif s.sources_shared and not s.moves:
            maps = self._shared_sources()
        elif s.states is not None:
            maps = self._states_by_statistics()
        else:
            # A map per position: many problems, each from that position's ciphertexts alone.
            solver = PieceMapSolver(self.templates, s, self.channels)
            lean = self.length // s.planes > LEAN_UNITS
            self.facts["lean_search"] = lean
            maps = solver.solve_each(self.x, restarts=self.attack.restarts, seed=self.attack.seed, lean=lean)
        self.seconds["piece_maps"] = time.perf_counter() - start
        start = time.perf_counter()
        cells = np.arange(self.pieces)
        if self.block == 1 and s.lines is not None:
            maps = self._choose_colours(maps, per_piece=False)
            cells = self._place_lines(maps)
        elif self.block == 1 and s.moves:
            maps = self._choose_colours(maps, per_piece=False)
            cells = self._place_pixels(maps)
        elif s.sources_shared and not s.moves:
            maps = self._by_edges(maps)
        elif s.shared:
            shared, cells = self._shared_placement(shared)
            maps = [shared] * self.pieces
        else:
            if s.states is None:
                maps = self._choose_colours(maps, per_piece=True)
                maps = self._agree_with_the_picture(maps)
            if s.moves:
                maps, cells = self._turned_placement(maps)
            else:
                maps = self._turns_in_place(maps)
        self.seconds["placement"] = time.perf_counter() - start
        found = self._component_map(maps, cells)
        if self.block == 1 and s.lines is not None:
            return found  # the lines' order is settled with its reversal (_place_lines)
        if s.moves and (not s.shared or self.block == 1 or self.open_turn):
            found = self._upright(found)
        return found

    def _shared_sources(self) -> list[PieceMap]:
        """Every piece moves its units alike but inverts them by masks of its own (e.g. a key
        bit per pixel). A unit inverted in one piece and not in another correlates negatively
        with itself there, over the ciphertexts: each unit's signs over the pieces
        (:func:`_signs_on_grid`) undo its masks up to one inversion of the unit everywhere,
        which leaves one shared map, solved on the units of all pieces like any shared map."""
        s = self.structure
        full = (1 << s.bits) - 1
        solver = PieceMapSolver(self.templates.flatten(0, 1)[None], s, self.channels)  # checks the masks
        relative = torch.zeros((self.pieces, self.length), dtype=torch.uint8)  # (P, L)
        for unit in np.flatnonzero(s.own_masks):
            signs = _signs_on_grid(self.x[..., unit], self.rows, self.cols)
            relative[:, unit] = torch.from_numpy(signs < 0).to(torch.uint8) * full
        shared = solver.solve((self.x ^ relative).flatten(0, 1), restarts=self.attack.restarts,
                              seed=self.attack.seed)
        self.facts["pieces_with_own_masks"] = int((relative != 0).any(1).sum())
        return [PieceMap(shared.src, shared.mask ^ r.numpy()) for r in relative]

    def _states_by_statistics(self) -> list[PieceMap]:
        """Each position's in-piece map from the cipher's few classes of maps (up to turns,
        which placement settles). First the inversions RELATIVE to one another: the units of a
        natural piece all correlate positively, so the classes whose restored units have the
        largest summed correlation over the ciphertexts are kept (a turn or channel order only
        relabels the pairs; inverting a line of the piece makes its pairs with the rest
        negative). Among those, the one whose restored pieces have value histograms per channel
        and colour statistics closest to the public images' at some position (the inversion of
        the whole piece, which leaves every correlation as it is)."""
        sources, masks = self.structure.states
        full = (1 << self.structure.bits) - 1
        targets = _channel_histograms(self.templates, self.channels, self.structure.planes, full)  # (P, C, V)
        chosen = []
        for i in range(self.pieces):
            decoded = [PieceMap(src, mask).decode(self.x[:, i]) for src, mask in zip(sources, masks)]
            coherence = np.array([_summed_correlation(units) for units in decoded])
            kept = np.flatnonzero(coherence >= coherence.max() - COHERENCE_TIE * max(1.0, abs(coherence.max())))
            costs = []
            for k in kept:
                mine = _channel_histograms(decoded[k][None], self.channels, self.structure.planes, full)[0]
                histogram = float((mine[None] - targets).abs().sum(-1).sum(-1).min())
                costs.append(histogram + self._colour_cost(self._units_to_pixels(decoded[k])))
            best = int(kept[int(np.argmin(costs))])
            chosen.append(PieceMap(sources[best], masks[best]))
        return chosen

    def _symmetries(self, *, turns: bool, colours: bool) -> list[np.ndarray]:
        return symmetries(self.channels, self.block, self.structure.planes, turns=turns, colours=colours)

    def _decode(self, maps: list[PieceMap], cells: np.ndarray, images: torch.Tensor) -> torch.Tensor:
        """Images of the keyed shape decrypted with per-piece maps and a placement."""
        return self._component_map(maps, cells).decrypt(images, self.keyed)

    def _component_map(self, maps: list[PieceMap], cells: np.ndarray) -> ComponentMap:
        return compose_map(self.keyed, self.block, self.structure.bits, [m.src for m in maps],
                           [m.mask for m in maps], cells)

    def _agree_with_the_picture(self, maps: list[PieceMap]) -> list[PieceMap]:
        """A map per position is fixed by its own statistics only up to inverting the piece and
        exchanging its channels, which the piece's value and colour statistics judge poorly
        from few ciphertexts. Pictures are bright or dark, reddish or bluish as a whole: over
        the ciphertexts, each channel's mean in a piece follows that channel's mean in the rest
        of the picture. Each piece takes the inversion and channel order whose brightness and
        colour (:func:`_brightness_and_colour`) agree best (summed correlations) with the other
        pieces', piece by piece until none changes;
        the pieces decided by their own statistics, most of them, anchor the others."""
        full = (1 << self.structure.bits) - 1
        inversions = (False, True) if full in self.structure.masks else (False,)
        colours = [g for k, g in enumerate(self._symmetries(turns=False, colours=True))  # [0]: the identity
                   if k == 0 or all(self.structure.allows(m.then(g).src) for m in maps)]
        options = [(g, inverted) for g in colours for inverted in inversions]  # options[0]: unchanged
        if len(options) == 1 or self.pieces < 3:
            return maps

        def relabel(m: PieceMap, g: np.ndarray, inverted: bool) -> PieceMap:
            moved = m.then(g)
            return PieceMap(moved.src, moved.mask ^ full) if inverted else moved

        means = torch.stack([torch.stack([
            self._units_to_pixels(relabel(m, g, inverted).decode(self.x[:, i])).double().mean((2, 3))
            for g, inverted in options]) for i, m in enumerate(maps)])  # (P, options, N, C)
        choice = np.zeros(self.pieces, np.int64)
        total = means[:, 0].sum(0)
        for _ in range(10):
            changed = 0
            for i in range(self.pieces):
                rest = _brightness_and_colour(total - means[i, choice[i]])
                agreement = [float(_corr_columns(_brightness_and_colour(means[i, o]), rest).sum())
                             for o in range(len(options))]
                best = int(np.argmax(agreement))
                if agreement[best] > agreement[choice[i]] + 1e-9:
                    total += means[i, best] - means[i, choice[i]]
                    choice[i], changed = best, changed + 1
            if not changed:
                break
        self.facts["pieces_changed_by_agreement"] = int((choice != 0).sum())
        return [relabel(m, *options[o]) for m, o in zip(maps, choice)]

    # -- colours: channel order of each piece (or of all) from the public images' statistics -----
    def _colour_cost(self, pixels: torch.Tensor) -> float:
        """Distance of per-channel statistics of ``pixels`` ``(M, C, ...)`` to the public images'."""
        return float(((_channel_stats(pixels) - self.public_stats) ** 2).sum())

    def _choose_colours(self, maps: list[PieceMap], *, per_piece: bool) -> list[PieceMap]:
        if self.channels == 1:
            return maps
        options = [g for g in self._symmetries(turns=False, colours=True)
                   if all(self.structure.allows(m.then(g).src) for m in maps)] or \
            self._symmetries(turns=False, colours=True)
        if not per_piece:
            shared = [[m.then(g) for m in maps] for g in options]
            costs = [self._colour_cost(self._decode(c, np.arange(self.pieces), self.cts[:COLOUR_SAMPLE])) for c in shared]
            return shared[int(np.argmin(costs))]
        chosen = []
        for i, m in enumerate(maps):
            costs = []
            for g in options:
                units = m.then(g).decode(self.x[:, i])
                costs.append(self._colour_cost(self._units_to_pixels(units)))
            chosen.append(m.then(options[int(np.argmin(costs))]))
        return chosen

    def _units_to_pixels(self, units: torch.Tensor) -> torch.Tensor:
        """Plain units ``(M, L)`` of single pieces -> uint8 pieces ``(M, C, B, B)``."""
        b = self.block
        return assemble_units(units[:, None], (self.channels, b, b), b, self.structure.bits)

    # -- shared maps ---------------------------------------------------------------------------
    def _by_edges(self, maps: list[PieceMap]) -> list[PieceMap]:
        """Pieces stay and every piece moves its units alike (``maps`` differ in their masks at
        most): the turn (and mirror) of them all that makes edges between neighbouring pieces
        smoothest, then the channel order closest to the public images'."""
        sample = self.cts[:64]
        options = self._symmetries(turns=True, colours=True)
        options = [g for g in options if self.structure.allows(maps[0].then(g).src)] or options
        candidates = [[m.then(g) for m in maps] for g in options]
        cells = np.arange(self.pieces)
        if self.pieces > 1 and self.block > 1:
            edges = [block_edge_cost(self._decode(c, cells, sample), self.block) for c in candidates]
            best = min(edges)
            candidates = [c for c, e in zip(candidates, edges) if e <= best * (1 + 1e-6)]
        costs = [self._colour_cost(self._decode(c, cells, self.cts[:COLOUR_SAMPLE])) for c in candidates]
        return candidates[int(np.argmin(costs))]

    def _allowed(self, candidates: list[PieceMap]) -> list[PieceMap]:
        """The candidates that are maps some key of the cipher could make (all, if none is)."""
        kept = [c for c in candidates if self.structure.allows(c.src)]
        return kept or candidates

    def _shared_placement(self, shared: PieceMap) -> tuple[PieceMap, np.ndarray]:
        """Pieces move. Turning every piece alike is turning the whole picture, which edges
        cannot see: turns that no key could make are dropped (the cipher's classes), then the
        one whose pieces fit together best (lowest summed best-partner dissimilarity) is
        placed; the channel order comes from colour statistics. Where several turns remain,
        the picture's turn is left to the public-image prior (``self.open_turn``)."""
        identity = np.arange(self.pieces)
        turns = self._allowed([shared.then(g) for g in self._symmetries(turns=True, colours=False)])
        self.open_turn = len(turns) > 1
        best = None
        for candidate in turns:
            table = summed_dissimilarity(self._decode([candidate] * self.pieces, identity, self.cts),
                                         self.block, self.attack.compat, self.attack.reg)
            fit = float(np.sort(table, axis=2)[..., 0].sum())
            if best is None or fit < best[0]:
                best = (fit, candidate, table)
        _, shared, table = best
        colours = self._allowed([shared.then(g) for g in self._symmetries(turns=False, colours=True)])
        sample = self.cts[:COLOUR_SAMPLE]
        costs = [self._colour_cost(self._decode([c] * self.pieces, identity, sample)) for c in colours]
        shared = colours[int(np.argmin(costs))]
        solved = place(table, self.rows, self.cols)
        self.facts["largest_cluster"] = solved.largest_cluster / self.pieces
        return shared, solved.cells

    # -- a map per position ----------------------------------------------------------------------
    def _turn_table(self, maps: list[PieceMap]) -> np.ndarray:
        """Dissimilarity of every pair of pieces in every turn (``(2, 8P, 8P)``), each image's
        table divided by its median, summed over the first ciphertexts."""
        images = self._decode(maps, np.arange(self.pieces), self.cts[:self.attack.PLACEMENT_IMAGES])
        total = None
        for image in split(images, self.block).double():
            table, _ = dihedral_dissimilarity(image, self.attack.compat, self.attack.reg)
            table = table / (np.median(table[np.isfinite(table)]) + 1e-9)
            total = table if total is None else total + table
        return total

    def _turned_placement(self, maps: list[PieceMap]) -> tuple[list[PieceMap], np.ndarray]:
        """Pieces move and each may still be turned: placement with 8 states per piece."""
        solved = place(self._turn_table(maps), self.rows, self.cols, states=DIHEDRAL)
        self.facts["largest_cluster"] = solved.largest_cluster / self.pieces
        turns = self._symmetries(turns=True, colours=False)
        return [m.then(turns[int(t)]) for m, t in zip(maps, solved.states)], solved.cells

    def _turns_in_place(self, maps: list[PieceMap]) -> list[PieceMap]:
        """Pieces stay but each may be turned: iterated conditional modes on the edges. A 1x1
        piece has no edge inside it and every turn leaves it as it is: nothing to search."""
        if self.block == 1:
            return maps
        total = self._turn_table(maps)
        state = np.zeros(self.pieces, np.int64)
        for _ in range(10):
            changed = False
            for i in range(self.pieces):
                r, c = divmod(i, self.cols)
                cost = np.zeros(DIHEDRAL)
                for side, (j, first) in ((0, (i + 1, True)), (0, (i - 1, False)),
                                         (1, (i + self.cols, True)), (1, (i - self.cols, False))):
                    if not (0 <= j < self.pieces) or (side == 0 and j // self.cols != r):
                        continue
                    rows = DIHEDRAL * i + np.arange(DIHEDRAL)
                    other = DIHEDRAL * j + state[j]
                    cost += total[side, rows, other] if first else total[side, other, rows]
                t = int(np.argmin(cost))
                changed |= t != state[i]
                state[i] = t
            if not changed:
                break
        turns = self._symmetries(turns=True, colours=False)
        return [m.then(turns[int(t)]) for m, t in zip(maps, state)]

    def _upright(self, found: ComponentMap) -> ComponentMap:
        """The quarter turn of the picture that a prior fitted on public images likes best,
        its log-probabilities summed over every restored picture
        (:mod:`ppattack.solvers.uprightness`; placement leaves it open), then the mirror by
        :meth:`_unmirrored`. A picture that is
        not square is judged in square windows of ``gcd(rows, cols)`` pieces, each turned on
        its own: between side-by-side planes (etc-gray's Y | Cb | Cr) no edge ties their turns."""
        side = math.gcd(self.rows, self.cols) * self.block
        restored = found.decrypt(self.cts[:COLOUR_SAMPLE], self.keyed).double()
        grid = torch.arange(found.index.size).view(self.structure.planes, *self.keyed)
        windows = [(..., slice(top, top + side), slice(left, left + side))
                   for top in range(0, self.keyed[1], side) for left in range(0, self.keyed[2], side)]
        # Which window's content belongs where: value histograms against the public windows'.
        order = np.arange(len(windows))
        if len(windows) > 1:
            def histogram(x: torch.Tensor) -> torch.Tensor:
                counts = torch.bincount(x.round().long().flatten(), minlength=256).double()
                return counts / counts.sum()

            cost = np.array([[float((histogram(restored[a]) - histogram(self.public[b].double())).abs().sum())
                              for b in windows] for a in windows])
            rows, cols = linear_sum_assignment(cost)
            order[cols] = rows  # window position b receives the content of window order[b]
        moved = grid.clone()
        chosen = [0] * len(windows)
        # The window with the most contrast is turned by the prior; the others, planes of the
        # same picture, are turned so that their edges fall on its edges.
        spread = [float(restored[windows[order[b]]].std()) for b in range(len(windows))]
        anchor = int(np.argmax(spread))
        for b in [anchor] + [b for b in range(len(windows)) if b != anchor]:
            target, source = windows[b], windows[order[b]]
            if b == anchor:
                start = time.perf_counter()
                pictures = found.decrypt(self.cts, self.keyed)[source]  # decoded once: both votes read it
                vote = turn_vote(fit_turn_prior(self.mirror_public[target]), pictures)
                self.facts["turn_vote"] = {"turn": vote.turn, "margin": round(vote.margin, 1), "pictures": vote.pictures}
                self.seconds["turn_vote"] = time.perf_counter() - start
                t = self._unmirrored(vote.turn, pictures, target)
                edges = _edge_strength(turn(restored[source], t))
            else:
                t = int(np.argmax([float((_edge_strength(turn(restored[source], u)) * edges).mean())
                                   for u in range(DIHEDRAL)]))
            moved[target] = turn(grid[source], t)  # unit at a comes from moved[a]
            chosen[b] = t
        self.facts["global_turn"] = chosen if len(chosen) > 1 else chosen[0]
        self.facts["open_symmetry"] = ("the picture's turn and mirror: the keys' turns of single pieces make "
                                       "them a second valid key; chosen by a prior fitted on public images")
        moved = moved.reshape(-1).numpy()
        position = np.empty_like(moved)
        position[moved] = np.arange(len(moved))
        return ComponentMap(found.bits, position[found.index], found.mask)

    def _unmirrored(self, t: int, pictures: torch.Tensor, target: tuple) -> int:
        """``t`` or its mirror partner ``t ^ 4``: a mirror score trained on the public images'
        window ``target`` votes over the restored ``pictures`` (that window of every restored
        ciphertext) turned by ``t`` (``mirror_steps=0``: no vote, the prior's ``t`` stands)."""
        if self.attack.mirror_steps == 0:
            return t
        start = time.perf_counter()
        model = fit_mirror_score(self.mirror_public[target], steps=self.attack.mirror_steps,
                                 width=self.attack.mirror_width,
                                 seed=self.attack.seed)
        vote = mirror_vote(model, turn(pictures, t))
        self.facts["mirror_vote"] = {"z": round(vote.z, 2), "agree": round(vote.agree, 3),
                                     "pictures": vote.pictures}
        self.seconds["mirror_vote"] = time.perf_counter() - start
        return t ^ 4 if vote.mirrored else t

    # -- single pixels ---------------------------------------------------------------------------
    def _place_lines(self, maps: list[PieceMap]) -> np.ndarray:
        """Pixels that every key moves as whole lines (``structure.lines``): the order of the
        rows from the correlation of whole rows over the ciphertexts, matched to the public
        images' (seriation, :func:`ppattack.solvers.seriation.match_lines`), and likewise
        the columns; an axis that no key permutes stays. Correlations cannot tell an order from
        its reversal: the rows' is chosen by the public-image turn prior (an upside-down picture
        is its half turn mirrored, and the prior is blind to mirrors), the columns' by the
        mirror vote (``mirror_steps``; none: it stays as the seriation leaves it). Quadratic in
        the lines, not in the pixels. Returns the placement: cipher pixel i holds plain ``cells[i]``."""
        rows_move, cols_move = self.structure.lines
        identity = np.arange(self.pieces)
        decoded = self._decode(maps, identity, self.cts).double()
        public = self.public.double()

        def line_order(axis: int) -> np.ndarray:
            """Cipher line k of ``axis`` (2: rows, 3: columns) holds plain line ``order[k]``."""
            def lines(x: torch.Tensor) -> torch.Tensor:  # (N * other lines, lines, C)
                return x.movedim(axis, -1).movedim(1, -1).flatten(0, 1)

            return match_lines(correlation(lines(public)), correlation(lines(decoded)))

        row_order = line_order(2) if rows_move else np.arange(self.rows)
        col_order = line_order(3) if cols_move else np.arange(self.cols)
        if rows_move:
            pictures = self._decode(maps, (row_order[:, None] * self.cols + col_order[None, :]).ravel(),
                                    self.cts[:COLOUR_SAMPLE])
            prior = fit_turn_prior(self.mirror_public)
            upright = [float(prior.log_probabilities(p)[:, 0].sum()) for p in (pictures, pictures.flip(-2))]
            self.facts["rows_reversed_by_prior"] = upright[1] > upright[0]
            if upright[1] > upright[0]:
                row_order = self.rows - 1 - row_order
        cells = (row_order[:, None] * self.cols + col_order[None, :]).ravel()
        whole = (...,)  # the mirror vote's window: the whole picture
        if cols_move and self.attack.mirror_steps and \
                self._unmirrored(0, self._component_map(maps, cells).decrypt(self.cts, self.keyed), whole) == 4:
            cells = (row_order[:, None] * self.cols + (self.cols - 1 - col_order)[None, :]).ravel()
        self.facts["line_moves"] = {"rows": rows_move, "columns": cols_move}
        if cols_move and not self.attack.mirror_steps:
            self.facts["open_symmetry"] = "the columns' order or its reversal (a mirror of the picture): no mirror vote"
        return cells

    def _place_pixels(self, maps: list[PieceMap]) -> np.ndarray:
        """1x1 pieces: match the pixels' correlation over the ciphertexts to the public images'
        (Le Roux et al. 2007); the turn of the whole picture by the public-image prior."""
        identity = np.arange(self.pieces)
        decoded = self._decode(maps, identity, self.cts).double()
        n, c, h, w = decoded.shape
        observed = correlation(decoded.reshape(n, c, h * w).transpose(1, 2))
        template = correlation(self.public.double().reshape(len(self.public), c, h * w).transpose(1, 2))
        perm = match_positions(template, observed, restarts=1, seed=self.attack.seed)
        return perm


def _summed_correlation(units: torch.Tensor) -> float:
    """Sum of the Pearson correlations of every pair of unit columns ``(N, L)`` over the rows
    (constant columns count 0)."""
    x = units.double()
    x = x - x.mean(0)
    x = x / (x.pow(2).sum(0).sqrt() + 1e-12)
    return float((x.T @ x).sum() - (x.pow(2).sum(0)).sum())


def _signs_on_grid(values: torch.Tensor, rows: int, cols: int) -> np.ndarray:
    """+1 / -1 per column of ``values`` ``(N, P)``: one unit in every piece of a ``rows x cols``
    grid of pieces that stay in place, over N images; -1 where the unit is inverted relative to
    the majority. Neighbouring pieces of natural images correlate positively, so the sign of
    each neighbour pair's correlation says whether the two are inverted alike; the signs spread
    from the first piece over the tree of the most strongly correlated neighbour pairs (a
    maximum spanning tree), which the weakest pairs cannot mislead. A unit that hardly
    correlates with itself next door (a noise-like low bit) gets arbitrary signs, and matters little."""
    z = values.double() - values.double().mean(0)
    z = (z / z.norm(dim=0).clamp_min(1e-9)).numpy()
    grid = np.arange(rows * cols).reshape(rows, cols)
    first = np.concatenate([grid[:, :-1].ravel(), grid[:-1, :].ravel()])
    second = np.concatenate([grid[:, 1:].ravel(), grid[1:, :].ravel()])
    corr = np.einsum("np,np->p", z[:, first], z[:, second])
    # Weights in [1, 2], lowest for the strongest pairs: a zero weight would be no edge.
    graph = coo_matrix((2 - np.abs(corr), (first, second)), shape=(rows * cols,) * 2).tocsr()
    order, parent = breadth_first_order(minimum_spanning_tree(graph), 0, directed=False)
    signs = np.ones(rows * cols, np.int64)
    for piece in order[1:]:
        link = float(z[:, piece] @ z[:, parent[piece]])
        signs[piece] = signs[parent[piece]] * (1 if link >= 0 else -1)
    return signs if (signs > 0).sum() >= (signs < 0).sum() else -signs


def _brightness_and_colour(means: torch.Tensor) -> torch.Tensor:
    """Channel means ``(N, C)`` -> brightness (their mean) and each channel's departure from
    it, ``(N, 1 + C)``: brightness decides inversions, the departures the channels' order
    (the channels' own means move together with the brightness and could not tell them apart)."""
    brightness = means.mean(1, keepdim=True)
    return torch.cat([brightness, means - brightness], 1) if means.shape[1] > 1 else brightness


def _corr_columns(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Pearson correlation of every column of ``a`` with the same column of ``b`` (``(N, K)``)."""
    a, b = a - a.mean(0), b - b.mean(0)
    return ((a * b).sum(0) / ((a.pow(2).sum(0) * b.pow(2).sum(0)).sqrt() + 1e-12)).numpy()


def _edge_strength(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of every picture ``(M, C, H, W)``, standardised per picture."""
    x = images.double().mean(1)
    g = (x.diff(dim=-1)[..., :-1, :] ** 2 + x.diff(dim=-2)[..., :, :-1] ** 2).sqrt()
    g = g - g.mean(dim=(-2, -1), keepdim=True)
    return g / (g.std(dim=(-2, -1), keepdim=True) + 1e-9)


def _channel_histograms(units: torch.Tensor, channels: int, planes: int, full: int) -> torch.Tensor:
    """Value histograms of the most significant plane, per channel: ``(..., m, L)`` -> ``(..., C, 2^bits)``."""
    top = units.reshape(*units.shape[:-1], planes, channels, -1)[..., -1, :, :]  # (..., m, C, B*B)
    top = top.transpose(-3, -2).flatten(-2).long()  # (..., C, m*B*B)
    counts = torch.zeros((*top.shape[:-1], full + 1), dtype=torch.float64)
    counts.scatter_add_(-1, top, torch.ones_like(top, dtype=torch.float64))
    return counts / counts.sum(-1, keepdim=True)


def _channel_stats(pixels: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and spread (of values / 255) and the channel correlations of ``(M, C, ...)``."""
    x = pixels.double().flatten(2) / 255
    mean = x.mean(dim=(0, 2))
    centred = x - mean[None, :, None]
    std = centred.pow(2).mean(dim=(0, 2)).sqrt() + 1e-9
    c = x.shape[1]
    corr = [(centred[:, a] * centred[:, b]).mean() / std[a] / std[b] for a in range(c) for b in range(a + 1, c)]
    return torch.cat([mean, std, torch.stack(corr) if corr else mean[:0]])
