"""Networks used by the attacks, one concept per module.

- :mod:`.unet`: the U-Net of the inverse transformation network (itn).
- :mod:`.dcgan`: the block-wise generator and DCGAN discriminator of the ``gan`` attack.
- :mod:`.sagan`: SIA-GAN's block-position-adaptive generator and SAGAN-style discriminator.
"""
