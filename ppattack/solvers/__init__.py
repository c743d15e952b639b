"""The key-recovery building blocks the attacks share: jigsaw pieces and their edge
compatibility, placement and seriation of pieces, maps of a cipher's components, and what a
cipher's keys do (learned from keys of the attacker's own)."""
